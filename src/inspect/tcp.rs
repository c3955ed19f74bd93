//! Signatures of protocols over TCP: banners and first requests, text
//! (HTTP, SIP, mail, IRC) and binary (TLS, SMB, RDP, databases, Redis, MQTT).
use super::bytes::{be16, be32, contains_ci, first_line, line_is_text, starts_ci};
use super::{udp::dns_message, Guess, Protocol, INSPECT_BYTES};

/// The protocol one TCP payload prefix, sent to the server (`to_server`) or
/// from it, names.
pub(super) fn identify(to_server: bool, p: &[u8]) -> Option<Guess> {
    let first = *p.first()?;
    let strong = |x| Some((x, true));
    if p.starts_with(b"SSH-") && (p[4..].starts_with(b"2.") || p[4..].starts_with(b"1.")) {
        return strong(Protocol::Ssh);
    }
    if let Some(g) = tls_record(p) {
        return Some(g);
    }
    if first == 0xff && p.len() >= 3 && (0xfa..=0xfe).contains(&p[1]) {
        return strong(Protocol::Telnet); // IAC SB/WILL/WONT/DO/DONT
    }
    if p.len() > 19 && first == 19 && &p[1..20] == b"BitTorrent protocol" {
        return strong(Protocol::Bittorrent);
    }
    if let Some(g) = smb(p) {
        return Some(g);
    }
    if let Some(g) = tpkt(to_server, p) {
        return Some(g);
    }
    if let Some(g) = sip_or_http(to_server, p) {
        return Some(g);
    }
    if p.len() >= 14 && dns_message(&p[2..]) && be16(p, 0) as usize >= 12 {
        return strong(Protocol::Dns);
    }
    if to_server {
        client_tcp(p)
    } else {
        server_tcp(p)
    }
}

/// Client-only signatures.
fn client_tcp(p: &[u8]) -> Option<Guess> {
    let strong = |x| Some((x, true));
    let weak = |x| Some((x, false));
    if starts_ci(p, b"EHLO ") || starts_ci(p, b"HELO ") {
        return strong(Protocol::Smtp);
    }
    if starts_ci(p, b"AUTH TLS")
        || starts_ci(p, b"AUTH SSL")
        || starts_ci(p, b"FEAT\r\n")
        || starts_ci(p, b"SYST\r\n")
        || starts_ci(p, b"OPTS UTF8")
    {
        return strong(Protocol::Ftp);
    }
    if starts_ci(p, b"CAPA\r\n") || starts_ci(p, b"STLS\r\n") || starts_ci(p, b"APOP ") {
        return strong(Protocol::Pop3);
    }
    if imap_command(p) {
        return strong(Protocol::Imap);
    }
    if let Some(g) = postgres_startup(p) {
        return Some(g);
    }
    if redis_array(p) {
        return strong(Protocol::Redis);
    }
    if mqtt_connect(p).is_some() {
        return strong(Protocol::Mqtt);
    }
    if p.first().is_some_and(u8::is_ascii_uppercase)
        && p.split(|&b| b == b'\n')
            .take(4)
            .any(|l| l.starts_with(b"NICK ") || l.starts_with(b"CAP LS"))
    {
        return strong(Protocol::Irc);
    }
    let one_word = |l: &[u8]| !first_line(&l[5..]).contains(&b' ');
    if (starts_ci(p, b"USER ") || starts_ci(p, b"PASS ")) && one_word(p) {
        return weak(Protocol::Ftp); // POP3 shares these; the banner decides
    }
    if p == b"PING\r\n" {
        return weak(Protocol::Redis);
    }
    None
}

/// Server-only signatures (banners and first answers).
fn server_tcp(p: &[u8]) -> Option<Guess> {
    let strong = |x| Some((x, true));
    let weak = |x| Some((x, false));
    if (p.starts_with(b"220 ") || p.starts_with(b"220-")) && line_is_text(p) {
        let line = first_line(p);
        if contains_ci(line, b"FTP") {
            return strong(Protocol::Ftp);
        }
        if contains_ci(line, b"SMTP") {
            return strong(Protocol::Smtp);
        }
        if contains_ci(line, b"mail") {
            return weak(Protocol::Smtp);
        }
        return weak(Protocol::Ftp);
    }
    if p.starts_with(b"+OK ") && line_is_text(p) && p.len() > 5 {
        return strong(Protocol::Pop3);
    }
    if p.starts_with(b"* OK") || p.starts_with(b"* PREAUTH") || p.starts_with(b"* BYE") {
        return strong(Protocol::Imap);
    }
    if p.starts_with(b":") && line_is_text(p) {
        // ":irc.example.net NOTICE * :*** Looking up your hostname"
        let line = first_line(p);
        let cmd = line.split(|&b| b == b' ').nth(1).unwrap_or(b"");
        if cmd == b"NOTICE" || (cmd.len() == 3 && cmd.iter().all(u8::is_ascii_digit)) {
            return strong(Protocol::Irc);
        }
    }
    if let Some(g) = mysql_greeting(p) {
        return Some(g);
    }
    if let Some(g) = postgres_server(p) {
        return Some(g);
    }
    if p.starts_with(b"+PONG\r\n")
        || p.starts_with(b"-NOAUTH ")
        || p.starts_with(b"-WRONGPASS ")
        || p.starts_with(b"-ERR unknown command")
        || p.starts_with(b"-ERR Protocol error")
        || p.starts_with(b"-ERR wrong number of arguments")
    {
        return strong(Protocol::Redis);
    }
    if p == b"+OK\r\n" {
        return weak(Protocol::Redis);
    }
    if p.len() >= 4 && p[0] == 0x20 && (p[1] == 2 || p[1] == 3) && p[2] <= 1 {
        return weak(Protocol::Mqtt); // CONNACK
    }
    None
}

// ---- text protocols ------------------------------------------------------

const HTTP_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"PATCH",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
];
const SIP_METHODS: &[&[u8]] = &[
    b"INVITE",
    b"REGISTER",
    b"OPTIONS",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"MESSAGE",
    b"INFO",
    b"PRACK",
    b"UPDATE",
    b"REFER",
    b"PUBLISH",
];

/// HTTP/1.x or SIP: a request line or a status line.
pub(super) fn sip_or_http(to_server: bool, p: &[u8]) -> Option<Guess> {
    // Cheap prefix checks first: most payloads are not text at all.
    if p.starts_with(b"SIP/2.0 ") && status_code(&p[8..]) {
        return Some((Protocol::Sip, true));
    }
    if (p.starts_with(b"HTTP/1.0 ") || p.starts_with(b"HTTP/1.1 ")) && status_code(&p[9..]) {
        return Some((Protocol::Http, true));
    }
    if !to_server || !p.first().is_some_and(u8::is_ascii_uppercase) {
        return None;
    }
    if p.starts_with(b"PRI * HTTP/2.0\r\n") {
        return Some((Protocol::Http, true));
    }
    let sp = p.iter().take(12).position(|&b| b == b' ')?;
    let method = &p[..sp];
    let sip = SIP_METHODS.contains(&method);
    let http = HTTP_METHODS.contains(&method);
    if !(sip || http) {
        return None;
    }
    let line = first_line(p);
    let rest = &line[(sp + 1).min(line.len())..];
    if sip && (rest.starts_with(b"sip:") || rest.starts_with(b"sips:") || rest.starts_with(b"tel:"))
    {
        return Some((Protocol::Sip, line.ends_with(b" SIP/2.0")));
    }
    if http {
        let http_version = line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0");
        let target = rest.starts_with(b"/")
            || rest.starts_with(b"http://")
            || rest.starts_with(b"https://")
            || rest.starts_with(b"* ")
            || method == b"CONNECT";
        if http_version || (target && line.len() == p.len()) {
            // A whole request line, or one cut off by the prefix's end.
            return Some((Protocol::Http, true));
        }
    }
    None
}

fn status_code(p: &[u8]) -> bool {
    p.len() >= 3
        && p[..3].iter().all(u8::is_ascii_digit)
        && (b'1'..=b'6').contains(&p[0])
        && (p.len() == 3 || p[3] == b' ')
}

/// An IMAP command: a tag, a space, and a command that opens a session.
fn imap_command(p: &[u8]) -> bool {
    let Some(sp) = p.iter().take(17).position(|&b| b == b' ') else {
        return false;
    };
    let (tag, cmd) = (&p[..sp], &p[sp + 1..]);
    if tag.is_empty() || !tag.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'.') {
        return false;
    }
    [
        &b"CAPABILITY"[..],
        b"LOGIN ",
        b"STARTTLS",
        b"AUTHENTICATE ",
        b"ID (",
        b"ID NIL",
        b"NOOP",
    ]
    .iter()
    .any(|c| {
        starts_ci(cmd, c)
            && (c.ends_with(b" ") || matches!(cmd.get(c.len()), None | Some(b'\r' | b'\n' | b' ')))
    })
}

// ---- binary protocols ----------------------------------------------------

/// A TLS record header with a handshake (strong) or an alert/change-cipher/
/// application-data record (weak, a flow seen mid-session).
fn tls_record(p: &[u8]) -> Option<Guess> {
    if p.len() < 6 || p[1] != 3 || p[2] > 4 {
        return None;
    }
    let len = be16(p, 3) as usize;
    if len == 0 || len > 16384 + 2048 {
        return None;
    }
    match p[0] {
        0x16 => {
            // ClientHello, ServerHello, or (mid-session) other handshake types.
            let strong = matches!(p[5], 1 | 2) && p.len() >= 9 && {
                let hl = (p[6] as usize) << 16 | (p[7] as usize) << 8 | p[8] as usize;
                hl + 4 <= len
            };
            Some((Protocol::Tls, strong))
        }
        0x14 | 0x15 | 0x17 if p[2] >= 1 => Some((Protocol::Tls, false)),
        _ => None,
    }
}

/// SMB over NetBIOS session service / direct TCP, or a NetBIOS session request.
fn smb(p: &[u8]) -> Option<Guess> {
    if p.len() >= 8 && p[0] == 0 && (0xfd..=0xff).contains(&p[4]) && &p[5..8] == b"SMB" {
        return Some((Protocol::Smb, true));
    }
    if p.len() >= 8 && p[0] == 0x81 && p[1] == 0 && be16(p, 2) as usize + 4 == p.len() {
        return Some((Protocol::Smb, false)); // NetBIOS session request (139)
    }
    None
}

/// TPKT + X.224 connection request / confirm: RDP when the request carries the
/// mstshash cookie or an RDP negotiation, or the confirm an RDP negotiation answer.
fn tpkt(to_server: bool, p: &[u8]) -> Option<Guess> {
    if p.len() < 11 || p[0] != 3 || p[1] != 0 {
        return None;
    }
    let len = be16(p, 2) as usize;
    let li = p[4] as usize;
    if len < 11 || li + 5 != len || len > p.len() {
        return None;
    }
    let code = p[5] & 0xf0;
    if to_server && code == 0xe0 {
        let body = &p[11..len];
        let cookie = body.starts_with(b"Cookie: mstshash=") || body.starts_with(b"Cookie: msts=");
        let neg = len >= 19 && p[len - 8] == 1 && be16(p, len - 6) == 0x0800;
        return Some((Protocol::Rdp, cookie || neg));
    }
    if !to_server && code == 0xd0 {
        let neg = len == 19 && matches!(p[11], 2 | 3);
        return Some((Protocol::Rdp, neg));
    }
    None
}

/// MySQL's initial handshake (protocol 10) or the error packet a server sends
/// instead of it ("Host is not allowed to connect").
fn mysql_greeting(p: &[u8]) -> Option<Guess> {
    if p.len() < 8 || p[3] != 0 {
        return None;
    }
    let len = p[0] as usize | (p[1] as usize) << 8 | (p[2] as usize) << 16;
    if !(4..=1024).contains(&len) || (len + 4 != p.len() && p.len() < INSPECT_BYTES) {
        return None;
    }
    match p[4] {
        0x0a => {
            let ver = &p[5..];
            let nul = ver.iter().take(64).position(|&b| b == 0)?;
            let v = &ver[..nul];
            (nul >= 3
                && v[0].is_ascii_digit()
                && v.contains(&b'.')
                && v.iter().all(|b| b.is_ascii_graphic()))
            .then_some((Protocol::Mysql, true))
        }
        0xff => {
            let code = u16::from_le_bytes([p[5], p[6]]);
            ((1000..=1300).contains(&code)
                && p[7..]
                    .iter()
                    .take(8)
                    .all(|b| b.is_ascii_graphic() || *b == b' '))
            .then_some((Protocol::Mysql, true))
        }
        _ => None,
    }
}

/// PostgreSQL StartupMessage (protocol 3.0), SSLRequest, GSSENCRequest or
/// CancelRequest.
fn postgres_startup(p: &[u8]) -> Option<Guess> {
    if p.len() < 8 {
        return None;
    }
    let (len, code) = (be32(p, 0) as usize, be32(p, 4));
    match code {
        80877103 | 80877104 if len == 8 => Some((Protocol::Postgresql, true)),
        80877102 if len == 16 => Some((Protocol::Postgresql, true)),
        0x0003_0000
            if (9..=10_000).contains(&len)
                && (p.len() < 13 || p[8..].starts_with(b"user\0") || p[8].is_ascii_lowercase()) =>
        {
            Some((Protocol::Postgresql, true))
        }
        _ => None,
    }
}

/// A PostgreSQL server's authentication request or fatal error.
fn postgres_server(p: &[u8]) -> Option<Guess> {
    if p.len() < 9 {
        return None;
    }
    let len = be32(p, 1) as usize;
    match p[0] {
        b'R' if (8..=2048).contains(&len) && matches!(be32(p, 5), 0 | 2 | 3 | 5 | 7..=12) => {
            Some((Protocol::Postgresql, true))
        }
        b'E' if (8..=4096).contains(&len)
            && (p[5..].starts_with(b"SFATAL") || p[5..].starts_with(b"SERROR")) =>
        {
            Some((Protocol::Postgresql, true))
        }
        _ => None,
    }
}

/// A RESP array of bulk strings: `*2\r\n$4\r\nAUTH\r\n...`.
fn redis_array(p: &[u8]) -> bool {
    fn number(p: &[u8], at: usize) -> Option<usize> {
        let n = p[at..]
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_digit())
            .count();
        (n > 0 && p[at + n..].starts_with(b"\r\n")).then_some(at + n + 2)
    }
    if p.first() != Some(&b'*') {
        return false;
    }
    let Some(at) = number(p, 1) else {
        return false;
    };
    p.get(at) == Some(&b'$') && number(p, at + 1).is_some()
}

/// An MQTT CONNECT: where its flags byte is.
pub(super) fn mqtt_connect(p: &[u8]) -> Option<usize> {
    if p.first() != Some(&0x10) {
        return None;
    }
    let mut at = 1;
    while at < 5 && *p.get(at)? & 0x80 != 0 {
        at += 1;
    }
    let name = &p.get(at + 1..)?;
    if name.starts_with(b"\x00\x04MQTT") && matches!(name.get(6), Some(4 | 5)) {
        Some(at + 1 + 7)
    } else if name.starts_with(b"\x00\x06MQIsdp") && name.get(8) == Some(&3) {
        Some(at + 1 + 9)
    } else {
        None
    }
}
