//! services(5) parsing: `name port/protocol [aliases...] [# comment]`.
use super::Transport;
use std::fmt;

/// A services(5) file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicesFileError {
    pub path: String,
    /// 1-based line, 0 when the file could not be read at all.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ServicesFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{}:{}: {}", self.path, self.line, self.message)
        }
    }
}

impl std::error::Error for ServicesFileError {}

/// Parses services(5) text into (transport, port, name, comment) entries.
pub fn parse_services_file(
    path: &str,
    text: &str,
) -> Result<Vec<(Transport, u16, String, String)>, ServicesFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let (body, comment) = match raw.split_once('#') {
            Some((b, c)) => (b, c.trim()),
            None => (raw, ""),
        };
        let mut fields = body.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let err = |m: String| ServicesFileError {
            path: path.to_string(),
            line: i + 1,
            message: m,
        };
        let pp = fields
            .next()
            .ok_or_else(|| err(format!("'{name}' has no port/protocol")))?;
        let (port, proto) = pp
            .split_once('/')
            .ok_or_else(|| err(format!("expected port/protocol, found '{pp}'")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err(format!("bad port '{port}'")))?;
        let t = Transport::from_name(proto)
            .ok_or_else(|| err(format!("unknown protocol '{proto}'")))?;
        out.push((t, port, name.to_string(), comment.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_and_comments() {
        let e = parse_services_file(
            "f",
            "# hdr\nhttp-dev 8000/tcp web # dev server\n\nfoo 9/udp\n",
        )
        .unwrap();
        assert_eq!(
            e[0],
            (Transport::Tcp, 8000, "http-dev".into(), "dev server".into())
        );
        assert_eq!(e[1], (Transport::Udp, 9, "foo".into(), String::new()));
    }

    #[test]
    fn bad_line_names_line() {
        let e = parse_services_file("f", "ok 1/tcp\nbad 70000/tcp\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.to_string(), "f:2: bad port '70000'");
    }
}
