//! A streaming client of `rocmforge serve` with the standard library only: POST a chat request
//! with `"stream": true` and print each server-sent event's text as it arrives.
//!
//! usage: rocmforge serve MODEL.gguf --port 8080 &
//!        cargo run --example serve_client -- http://127.0.0.1:8080 "Why is the sky blue?"

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let question = args.next().unwrap_or_else(|| "Why is the sky blue?".into());
    let host = url.strip_prefix("http://").ok_or("the URL must start with http://")?.trim_end_matches('/');

    let body = serde_json::json!({
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 64,
        "stream": true,
    })
    .to_string();
    let mut stream = TcpStream::connect(host)?;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        chunked |= header.to_ascii_lowercase().starts_with("transfer-encoding: chunked");
    }
    if !status.contains(" 200 ") {
        let mut rest = String::new();
        reader.read_to_string(&mut rest)?;
        return Err(format!("{}: {rest}", status.trim()).into());
    }
    // The body: HTTP chunks (when chunked) carrying `data: {...}` lines.
    let mut events = String::new();
    loop {
        let data = if chunked {
            let mut size = String::new();
            if reader.read_line(&mut size)? == 0 {
                break;
            }
            let size = usize::from_str_radix(size.trim(), 16)?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk)?;
            chunk.truncate(size);
            String::from_utf8(chunk)?
        } else {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            line
        };
        events.push_str(&data);
        while let Some(end) = events.find('\n') {
            let line: String = events.drain(..=end).collect();
            let Some(json) = line.trim().strip_prefix("data: ") else { continue };
            if json == "[DONE]" {
                println!();
                return Ok(());
            }
            let v: serde_json::Value = serde_json::from_str(json)?;
            if let Some(error) = v.get("error") {
                return Err(format!("the server failed: {error}").into());
            }
            if let Some(text) = v["choices"][0]["delta"]["content"].as_str() {
                print!("{text}");
                std::io::stdout().flush()?;
            }
        }
    }
    Err("the stream ended without [DONE]".into())
}
