//! The record framing shared by the WAL and the MANIFEST, parsed from the format alone
//! (FORMAT.md, "Log"), so that tests can aim damage at a record's header or payload.

/// The log is written in blocks of this size; a header never straddles two.
pub const LOG_BLOCK: usize = 32 * 1024;
/// A fragment's header: crc32c (4 bytes), payload length (2), type (1).
pub const LOG_HEADER: usize = 7;

/// One logical record of a log file: where it starts (its first header), where it ends (after
/// its last fragment), and the header offset and payload length of each fragment.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub start: usize,
    pub end: usize,
    pub fragments: Vec<(usize, usize)>,
}

/// Splits an intact log into logical records.
pub fn parse_log(data: &[u8]) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut open: Option<LogRecord> = None;
    loop {
        let left = LOG_BLOCK - pos % LOG_BLOCK;
        if left < LOG_HEADER {
            pos += left;
        }
        if pos + LOG_HEADER > data.len() || data[pos + 6] == 0 {
            break;
        }
        let len = u16::from_le_bytes([data[pos + 4], data[pos + 5]]) as usize;
        let end = pos + LOG_HEADER + len;
        match data[pos + 6] {
            1 => out.push(LogRecord {
                start: pos,
                end,
                fragments: vec![(pos, len)],
            }),
            2 => {
                open = Some(LogRecord {
                    start: pos,
                    end,
                    fragments: vec![(pos, len)],
                })
            }
            3 | 4 => {
                let mut r = open
                    .take()
                    .expect("fragment without FIRST in an intact log");
                r.fragments.push((pos, len));
                r.end = end;
                if data[pos + 6] == 4 {
                    out.push(r);
                } else {
                    open = Some(r);
                }
            }
            t => panic!("unknown record type {t} in an intact log"),
        }
        pos = end;
    }
    assert!(open.is_none());
    out
}
