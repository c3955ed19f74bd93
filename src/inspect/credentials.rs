//! Cleartext evidence in the client's first packets: logins, HTTP
//! credentials and password forms, and upgrades to TLS.
use super::bytes::{contains_ci, first_line, starts_ci};
use super::{clear, tcp::mqtt_connect, Protocol};

/// Cleartext evidence in one client-to-server payload prefix of a flow
/// identified as `proto`; `seen` are the bits already found.
pub fn scan_credentials(proto: Protocol, p: &[u8], seen: u8) -> u8 {
    use clear::*;
    if seen & UPGRADED != 0 {
        return 0;
    }
    match proto {
        Protocol::Http => http_credentials(p),
        Protocol::Ftp => {
            if starts_ci(p, b"AUTH TLS") || starts_ci(p, b"AUTH SSL") {
                UPGRADED
            } else if starts_ci(p, b"USER ") {
                if anonymous(&p[5..]) {
                    ANONYMOUS
                } else {
                    LOGIN
                }
            } else if starts_ci(p, b"PASS ") && seen & ANONYMOUS == 0 {
                LOGIN
            } else {
                0
            }
        }
        Protocol::Pop3 => {
            if starts_ci(p, b"STLS") {
                UPGRADED
            } else if starts_ci(p, b"USER ")
                || starts_ci(p, b"PASS ")
                || starts_ci(p, b"APOP ")
                || starts_ci(p, b"AUTH ")
            {
                LOGIN
            } else {
                0
            }
        }
        Protocol::Imap => {
            let line = first_line(p);
            let cmd = line
                .iter()
                .position(|&b| b == b' ')
                .map(|i| &line[i + 1..])
                .unwrap_or(b"");
            if starts_ci(cmd, b"STARTTLS") {
                UPGRADED
            } else if starts_ci(cmd, b"LOGIN ")
                || starts_ci(cmd, b"AUTHENTICATE PLAIN")
                || starts_ci(cmd, b"AUTHENTICATE LOGIN")
            {
                LOGIN
            } else {
                0
            }
        }
        Protocol::Smtp => {
            // Commands may be pipelined: look at every line of the prefix.
            let mut bits = 0;
            for line in p.split(|&b| b == b'\n') {
                if starts_ci(line, b"STARTTLS") {
                    return bits | UPGRADED;
                }
                if starts_ci(line, b"AUTH ") {
                    bits |= LOGIN;
                }
            }
            bits
        }
        Protocol::Redis => {
            let auth = (p.starts_with(b"*") && contains_ci(&p[..p.len().min(32)], b"\r\nAUTH\r\n"))
                || starts_ci(p, b"AUTH ");
            if auth {
                LOGIN
            } else {
                0
            }
        }
        Protocol::Mqtt => match mqtt_connect(p).and_then(|at| p.get(at)) {
            Some(flags) if flags & 0x40 != 0 => LOGIN,
            _ => 0,
        },
        _ => 0,
    }
}

fn anonymous(user: &[u8]) -> bool {
    let u = first_line(user);
    u.eq_ignore_ascii_case(b"anonymous") || u.eq_ignore_ascii_case(b"ftp")
}

fn http_credentials(p: &[u8]) -> u8 {
    use clear::*;
    let mut bits = 0;
    let head_end = p
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(p.len(), |i| i + 4);
    let head = &p[..head_end];
    for line in head.split(|&b| b == b'\n') {
        if starts_ci(line, b"Authorization:") || starts_ci(line, b"Proxy-Authorization:") {
            let v = &line[line.iter().position(|&b| b == b':').unwrap_or(0) + 1..];
            let v = &v[v.iter().take_while(|b| **b == b' ').count()..];
            bits |= if starts_ci(v, b"Basic ") {
                HTTP_BASIC
            } else {
                HTTP_AUTH
            };
        }
    }
    let request = first_line(p);
    let login_path = p.starts_with(b"POST ")
        && [
            "login", "signin", "sign_in", "logon", "wp-login", "/auth", "/session",
        ]
        .iter()
        .any(|w| contains_ci(request, w.as_bytes()));
    // A password field in a query string or a form body (the body may be the
    // packet after the headers).
    let body = if head_end < p.len() || p.starts_with(b"POST ") {
        &p[head_end..]
    } else {
        p
    };
    let field = password_field(request) || (!p.starts_with(b"GET ") && password_field(body));
    if login_path || field {
        bits |= LOGIN_FORM;
    }
    bits
}

/// A form or query field named like a password (`password=`, `passwd=`,
/// `pwd=`, `pass=`), at the start of a field (after `?`, `&`, a line end or
/// the start). One pass over the `=` signs.
fn password_field(p: &[u8]) -> bool {
    const NAMES: [&[u8]; 4] = [b"password", b"passwd", b"pwd", b"pass"];
    let mut start = Some(0);
    for (i, &b) in p.iter().enumerate() {
        match b {
            b'&' | b'?' | b'\n' => start = Some(i + 1),
            b'=' => {
                if let Some(s) = start.take() {
                    let name = &p[s..i];
                    if NAMES.iter().any(|n| name.eq_ignore_ascii_case(n)) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}
