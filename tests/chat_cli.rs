//! `rocmforge chat` in a pseudo-terminal (util-linux `script`), typed into as a person would: two
//! turns that remember each other, Ctrl-C that stops an answer but not the program, /reset, /exit.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Terminal {
    child: std::process::Child,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn type_text(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits (at most 90 s) until `done` holds for the screen.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; the screen:\n{}", self.screen());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prompts(s: &str) -> usize {
    s.matches("\n> ").count() + usize::from(s.starts_with("> "))
}

#[test]
fn chat_in_a_terminal_remembers_the_conversation_and_ctrl_c_stops_only_the_answer() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    // `exec`: a shell left waiting in between (dash, the usual /bin/sh, does not exec a `-c`
    // command itself) would take the Ctrl-C too and exit 130 once chat has ended normally.
    let command = format!(
        "exec {} chat {} --device cpu --temp 0 -n 160 --ctx 1024",
        env!("CARGO_BIN_EXE_rocmforge"),
        model.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` should run");
    let mut out = child.stdout.take().unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let writer = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            writer.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]).replace("\r\n", "\n"));
        }
    });
    let mut t = Terminal { child, screen };

    t.wait_for("the first prompt", |s| s.contains("chatting with") && prompts(s) >= 1);
    t.type_text("What is the capital of France?\n");
    let s = t.wait_for("the first answer", |s| prompts(s) >= 2);
    assert!(s.contains("Paris"), "{s}");

    // The second question only makes sense with the first in the history.
    t.type_text("And what is the capital of Italy?\n");
    let s = t.wait_for("the second answer", |s| prompts(s) >= 3);
    let second = &s[s.rfind("Italy?").unwrap()..];
    assert!(second.contains("Rome"), "{second}");
    let reused: Vec<usize> =
        s.split(" reused]").filter_map(|before| before.rsplit(", ").next()?.parse().ok()).collect();
    assert!(
        reused.len() == 2 && reused[0] == 0 && reused[1] > 20,
        "the second turn reuses the first's cache: {reused:?}\n{s}"
    );

    // Ctrl-C while it writes a long answer: the answer stops, the program waits for the next line.
    t.type_text("Write a long story about a dragon who learns to paint.\n");
    let before = t.screen().len();
    t.wait_for("the story to begin", |s| s.len() > before + 80);
    t.type_text("\x03");
    let s = t.wait_for("the answer to stop", |s| s.contains("[stopped]") && prompts(s) >= 4);
    let story = &s[before..s.find("[stopped]").unwrap()];
    println!("stopped after {} characters of story", story.len());

    t.type_text("/reset\n");
    t.wait_for("the reset", |s| s.contains("(conversation cleared)") && prompts(s) >= 5);
    t.type_text("/exit\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = t.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "chat did not exit after /exit:\n{}", t.screen());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}:\n{}", t.screen());
    println!("{}", t.screen());
}
