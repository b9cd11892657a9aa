//! Helpers the CLI's process tests share.
#![allow(dead_code)] // each test file uses its own subset

use std::process::Command;

/// The `strata` binary under test.
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// Runs `strata --masters MASTERS ARGS...`, which must succeed; its stdout.
pub fn strata(masters: &str, args: &[&str]) -> String {
    let out = Command::new(STRATA)
        .args(["--masters", masters])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET path` over HTTP/1.1 at `address`, with a deadline: the status code and the body.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_get_with(address, path, "")
}

/// [`http_get`] with extra header lines (each ending in `\r\n`).
pub fn http_get_with(address: &str, path: &str, headers: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// The value of the sample `series` (a name, with its labels if any, as exposed) in a
/// Prometheus exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
