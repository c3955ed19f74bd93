//! Names for addresses, from the traffic itself: the server name a TLS
//! client asks for (SNI), the `Host` of an HTTP request, and the addresses
//! a DNS answer gives for the name asked. Nothing is looked up.

/// A host name as the traffic wrote it, if it looks like one: 1 to 253
/// bytes of letters, digits, `-`, `_` and dots, not starting with a dot;
/// lowercased, without a trailing dot.
pub fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let ok = !raw.is_empty()
        && raw.len() <= 253
        && raw[0] != b'.'
        && raw
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    ok.then(|| String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// The server name of a TLS ClientHello's `server_name` extension.
pub fn tls_sni(p: &[u8]) -> Option<String> {
    // Record: handshake (22), version 3.x, length; handshake: ClientHello (1).
    if p.len() < 43 || p[0] != 22 || p[1] != 3 || p[5] != 1 {
        return None;
    }
    // Handshake header (4), version (2), random (32).
    let mut at = 5 + 4 + 2 + 32;
    let byte = |i: usize| p.get(i).copied().map(usize::from);
    let be16 = |i: usize| Some(byte(i)? << 8 | byte(i + 1)?);
    at += 1 + byte(at)?; // session id
    at += 2 + be16(at)?; // cipher suites
    at += 1 + byte(at)?; // compression methods
    let end = (at + 2 + be16(at)?).min(p.len());
    at += 2;
    while at + 4 <= end {
        let (kind, len) = (be16(at)?, be16(at + 2)?);
        if kind == 0 {
            // server_name_list length (2), name type (1: host_name = 0), length (2).
            let body = p.get(at + 4..at + 4 + len)?;
            if body.len() < 5 || body[2] != 0 {
                return None;
            }
            let n = (body[3] as usize) << 8 | body[4] as usize;
            return host_name(body.get(5..5 + n)?);
        }
        at += 4 + len;
    }
    None
}

/// The `Host` header of an HTTP request (its port left out).
pub fn http_host(p: &[u8]) -> Option<String> {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    if !METHODS.iter().any(|m| p.starts_with(m)) {
        return None;
    }
    let at = p
        .windows(7)
        .position(|w| w.eq_ignore_ascii_case(b"\r\nhost:"))?;
    let rest = &p[at + 7..];
    let line = &rest[..rest.iter().position(|&c| c == b'\r').unwrap_or(rest.len())];
    let value = line.trim_ascii();
    let host = match value.first() {
        // [v6]:port — no name.
        Some(b'[') => return None,
        _ => value.split(|&c| c == b':').next()?,
    };
    // An address is not a name.
    if host.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return None;
    }
    host_name(host)
}

/// A DNS message's name at `at` (compression followed, at most 16 jumps).
fn dns_name(m: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut out: Vec<u8> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *m.get(at)? as usize;
        match len {
            0 => {
                let next = end.unwrap_or(at + 1);
                return host_name(&out).map(|n| (n, next));
            }
            l if l & 0xc0 == 0xc0 => {
                let to = (l & 0x3f) << 8 | *m.get(at + 1)? as usize;
                end.get_or_insert(at + 2);
                if to >= at {
                    return None;
                }
                at = to;
            }
            l if l < 64 => {
                if !out.is_empty() {
                    out.push(b'.');
                }
                out.extend_from_slice(m.get(at + 1..at + 1 + l)?);
                at += 1 + l;
            }
            _ => return None,
        }
    }
    None
}

/// The addresses a DNS response (over UDP) gives in A and AAAA records,
/// each with the name its record is for, passed to `found`: the answers,
/// and the additional section's (the addresses of the name servers named).
pub fn dns_answers(m: &[u8], mut found: impl FnMut(std::net::IpAddr, String)) {
    if m.len() < 12 || m[2] & 0x80 == 0 || m[3] & 0x0f != 0 {
        return; // not a response, or an error
    }
    let count = |i: usize| (m[i] as usize) << 8 | m[i + 1] as usize;
    let questions = count(4);
    let answers = count(6) + count(8) + count(10);
    let mut at = 12;
    for _ in 0..questions.min(4) {
        let Some((_, next)) = dns_name(m, at) else {
            return;
        };
        at = next + 4;
    }
    for _ in 0..answers.min(64) {
        let Some((name, next)) = dns_name(m, at) else {
            return;
        };
        let Some(head) = m.get(next..next + 10) else {
            return;
        };
        let (kind, class) = ((head[0] as u16) << 8 | head[1] as u16, head[2] & 0x7f);
        let len = (head[8] as usize) << 8 | head[9] as usize;
        let Some(data) = m.get(next + 10..next + 10 + len) else {
            return;
        };
        match (kind, class, data.len()) {
            (1, 0 | 1, 4) => found(
                std::net::IpAddr::from(<[u8; 4]>::try_from(data).ok().unwrap()),
                name,
            ),
            (28, 0 | 1, 16) => found(
                std::net::IpAddr::from(<[u8; 16]>::try_from(data).ok().unwrap()),
                name,
            ),
            _ => {}
        }
        at = next + 10 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lowercased() {
        assert_eq!(host_name(b"Example.COM."), Some("example.com".into()));
        assert_eq!(host_name(b"a b"), None);
        assert_eq!(host_name(b""), None);
        assert_eq!(host_name(b".x"), None);
    }

    /// A ClientHello whose server_name extension names `name`, after
    /// another extension.
    fn client_hello(name: &[u8]) -> Vec<u8> {
        let n = name.len();
        let mut ext = vec![0x00, 0x17, 0, 0]; // extended_master_secret, empty
        ext.extend_from_slice(&[0, 0]); // server_name
        ext.extend_from_slice(&((n + 5) as u16).to_be_bytes());
        ext.extend_from_slice(&((n + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(n as u16).to_be_bytes());
        ext.extend_from_slice(name);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]); // random
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]); // session, suites, compression
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn the_server_name_of_a_client_hello() {
        assert_eq!(
            tls_sni(&client_hello(b"Mail.Example.com")),
            Some("mail.example.com".into())
        );
        assert_eq!(tls_sni(&client_hello(b"not a name")), None);
        let cut = client_hello(b"example.com");
        assert_eq!(tls_sni(&cut[..cut.len() - 4]), None, "cut short");
    }

    #[test]
    fn http_host_without_its_port() {
        let r = b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST: Www.Example.org:8080\r\n\r\n";
        assert_eq!(http_host(r), Some("www.example.org".into()));
        assert_eq!(http_host(b"GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n"), None);
        assert_eq!(http_host(b"HTTP/1.1 200 OK\r\nHost: x\r\n"), None);
    }

    #[test]
    fn dns_answers_follow_compression() {
        // Response for www.example.com: a CNAME to e.example.net, then an A.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 15]);
        m.extend_from_slice(b"\x01e\x07example\x03net\x00");
        let cname_target = 12 + 17 + 4 + 12;
        m.extend_from_slice(&[
            0xc0,
            cname_target as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            4,
            93,
            184,
            216,
            34,
        ]);
        let mut got = Vec::new();
        dns_answers(&m, |a, n| got.push((a.to_string(), n)));
        assert_eq!(
            got,
            [("93.184.216.34".to_string(), "e.example.net".to_string())]
        );
    }
}
