//! How keys and values travel through a command line: as text (the default), hex or base64,
//! in both directions — a command decodes its KEY and VALUE arguments and encodes what it
//! prints with the same encoding, so binary keys round-trip (`strata put --hex 00ff 01`,
//! `strata get --hex 00ff` prints `01`).
//!
//! Text output is the bytes themselves when they are plain text (valid UTF-8 without control
//! characters other than tab and newlines), otherwise an escaped form: invalid bytes and
//! control characters as `\xNN` and a backslash as `\\` (so the escaped form is unambiguous).

use base64::Engine as _;

use crate::error::{CliError, CliResult};

/// The `--hex` / `--base64` flags every data command takes.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct EncodingArgs {
    /// Keys and values are hex, in arguments and in output (`00ff` is two bytes).
    #[arg(long, conflicts_with = "base64")]
    pub hex: bool,
    /// Keys and values are base64 (standard alphabet, padded), in arguments and in output.
    #[arg(long)]
    pub base64: bool,
}

impl EncodingArgs {
    /// The encoding the flags choose.
    pub fn encoding(self) -> Encoding {
        if self.hex {
            Encoding::Hex
        } else if self.base64 {
            Encoding::Base64
        } else {
            Encoding::Text
        }
    }
}

/// An encoding of bytes as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 as is; anything else escaped (see the module documentation).
    #[default]
    Text,
    /// Lower-case hex, two digits a byte.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

impl Encoding {
    /// Decodes a command-line argument; `what` names it in the usage error (`KEY`, `--from`).
    pub fn decode(self, what: &str, text: &str) -> CliResult<Vec<u8>> {
        match self {
            Encoding::Text => Ok(text.as_bytes().to_vec()),
            Encoding::Hex => decode_hex(text)
                .map_err(|e| CliError::usage(format!("{what} is not valid hex: {e}"))),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| CliError::usage(format!("{what} is not valid base64: {e}"))),
        }
    }

    /// Encodes bytes for output.
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Text => escape(bytes),
            Encoding::Hex => encode_hex(bytes),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

/// Whether `c` prints as itself in text output.
fn is_plain(c: char) -> bool {
    !c.is_control() || matches!(c, '\t' | '\n' | '\r')
}

/// `bytes` as text: itself if plain text (see the module documentation); otherwise valid
/// UTF-8 runs as is, backslashes doubled, control characters and invalid bytes as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.chars().all(is_plain) {
            return text.to_owned();
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() && (c as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Lower-case hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Bytes of a hex string (either case; an optional `0x` prefix).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text).as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{} digits, not an even number", digits.len()));
    }
    let nibble = |i: usize| -> Result<u8, String> {
        let c = digits[i];
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{:?} at position {i} is not a hex digit", c as char))
    };
    (0..digits.len() / 2)
        .map(|i| Ok(nibble(2 * i)? << 4 | nibble(2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_bad_digits() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(encode_hex(&bytes), "00017f80ff");
        assert_eq!(decode_hex("00017F80ff").unwrap(), bytes);
        assert_eq!(decode_hex("0x00ff").unwrap(), [0, 0xff]);
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("é0").is_err());
    }

    #[test]
    fn text_escapes_only_what_is_not_utf8() {
        assert_eq!(escape("héllo\\".as_bytes()), "héllo\\");
        assert_eq!(escape(b"two\nlines\t"), "two\nlines\t");
        assert_eq!(escape(b"a\x00\xffb\\"), "a\\x00\\xffb\\\\");
        assert_eq!(escape(b"\xc3"), "\\xc3");
    }

    #[test]
    fn every_encoding_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        for e in [Encoding::Hex, Encoding::Base64] {
            assert_eq!(e.decode("KEY", &e.encode(&bytes)).unwrap(), bytes);
        }
        assert!(matches!(
            Encoding::Base64.decode("KEY", "!!"),
            Err(CliError::Usage(_))
        ));
    }
}
