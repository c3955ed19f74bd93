//! Payload protocol detection: which application protocol a flow speaks, from
//! the first bytes of each direction, whatever port it runs on.
//!
//! The reader copies at most [`INSPECT_BYTES`] of the first [`INSPECT_PACKETS`]
//! payload-carrying packets of each direction of a flow into the batch (after
//! the first, only those that start like text); a
//! worker runs [`identify`] and [`scan_credentials`] on them and keeps the
//! verdict in the flow (four bytes, [`FlowInspect`]). Nothing else of a packet's
//! payload is looked at, so the cost does not grow with the traffic volume.
//!
//! Signatures follow the protocols' own specifications (and the checks nDPI and
//! Wireshark's heuristic dissectors make): a *strong* match is a structure that
//! random bytes or another protocol would hardly produce (an SSH banner, a TLS
//! ClientHello, a DHCP magic cookie); a *weak* one is ambiguous alone (a bare
//! `220 ` banner is FTP or SMTP) and gives way to a strong match from either side.
//! Every check is bounds-checked on a slice of untrusted bytes and cannot panic.
use crate::services::Transport;

/// Packets per direction of a flow whose payload is inspected.
pub const INSPECT_PACKETS: u8 = 4;
/// Payload bytes of a packet inspected (HTTP request headers up to here).
pub const INSPECT_BYTES: usize = 1024;

/// An application protocol portflow recognises from payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Protocol {
    Http = 1,
    Tls,
    Ssh,
    Dns,
    Smtp,
    Ftp,
    Pop3,
    Imap,
    Telnet,
    Rdp,
    Smb,
    Mysql,
    Postgresql,
    Redis,
    Mqtt,
    Sip,
    Ntp,
    Dhcp,
    Quic,
    Bittorrent,
    Irc,
}

impl Protocol {
    pub const ALL: [Protocol; 21] = [
        Protocol::Http,
        Protocol::Tls,
        Protocol::Ssh,
        Protocol::Dns,
        Protocol::Smtp,
        Protocol::Ftp,
        Protocol::Pop3,
        Protocol::Imap,
        Protocol::Telnet,
        Protocol::Rdp,
        Protocol::Smb,
        Protocol::Mysql,
        Protocol::Postgresql,
        Protocol::Redis,
        Protocol::Mqtt,
        Protocol::Sip,
        Protocol::Ntp,
        Protocol::Dhcp,
        Protocol::Quic,
        Protocol::Bittorrent,
        Protocol::Irc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tls => "tls",
            Protocol::Ssh => "ssh",
            Protocol::Dns => "dns",
            Protocol::Smtp => "smtp",
            Protocol::Ftp => "ftp",
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
            Protocol::Telnet => "telnet",
            Protocol::Rdp => "rdp",
            Protocol::Smb => "smb",
            Protocol::Mysql => "mysql",
            Protocol::Postgresql => "postgresql",
            Protocol::Redis => "redis",
            Protocol::Mqtt => "mqtt",
            Protocol::Sip => "sip",
            Protocol::Ntp => "ntp",
            Protocol::Dhcp => "dhcp",
            Protocol::Quic => "quic",
            Protocol::Bittorrent => "bittorrent",
            Protocol::Irc => "irc",
        }
    }

    pub fn from_u8(v: u8) -> Option<Protocol> {
        Protocol::ALL.get((v as usize).wrapping_sub(1)).copied()
    }

    /// Protocols whose peers use arbitrary ports by design: they are not a
    /// mismatch on a port registered to nothing in particular.
    pub fn roams(self) -> bool {
        matches!(self, Protocol::Bittorrent)
    }

    /// IANA service names that are this protocol (an exact name, or the
    /// registered alternatives such as `http-alt`).
    fn names(self) -> &'static [&'static str] {
        match self {
            Protocol::Http => &[
                "http",
                "www",
                "www-http",
                "http-alt",
                "http-mgmt",
                "http-rpc-epmap",
                "webcache",
                "http-proxy",
                "radan-http",
                "synapse-nhttp",
            ],
            Protocol::Tls => &[],
            Protocol::Ssh => &["ssh", "sftp-ssh", "netconf-ssh", "snmpssh"],
            // NetBIOS name service uses DNS's message format (RFC 1002).
            Protocol::Dns => &["domain", "mdns", "llmnr", "dns-llq", "netbios-ns"],
            Protocol::Smtp => &["smtp", "submission", "lmtp"],
            Protocol::Ftp => &["ftp", "ftp-agent"],
            Protocol::Pop3 => &["pop3"],
            Protocol::Imap => &["imap", "imap3"],
            Protocol::Telnet => &["telnet", "rtelnet"],
            Protocol::Rdp => &["ms-wbt-server"],
            Protocol::Smb => &["microsoft-ds", "netbios-ssn"],
            Protocol::Mysql => &["mysql", "mysqlx"],
            Protocol::Postgresql => &["postgresql"],
            Protocol::Redis => &["redis"],
            Protocol::Mqtt => &["mqtt"],
            Protocol::Sip => &["sip"],
            Protocol::Ntp => &["ntp"],
            Protocol::Dhcp => &["bootps", "bootpc", "dhcp-failover"],
            Protocol::Quic => &[],
            Protocol::Bittorrent => &[],
            Protocol::Irc => &["irc", "ircu"],
        }
    }

    /// Whether a port registered as (`name`, `description`) is meant for this
    /// protocol. TLS (and QUIC on UDP) fits every "over TLS/SSL" registration
    /// (https, imaps, 8443 pcsync-https, secure-mqtt, domain-s...).
    pub fn fits_registration(self, name: &str, description: &str) -> bool {
        if self.names().iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return true;
        }
        match self {
            Protocol::Tls | Protocol::Quic => {
                let n = name.to_ascii_lowercase();
                let d = description.to_ascii_lowercase();
                n.contains("https")
                    || n.starts_with("secure-")
                    || n.ends_with("-tls")
                    || n.ends_with("-ssl")
                    || d.contains("tls")
                    || d.contains("ssl")
                    || d.contains("https")
                    || (self == Protocol::Quic && d.contains("quic"))
                    || [
                        "imaps",
                        "pop3s",
                        "ftps",
                        "ftps-data",
                        "ldaps",
                        "sips",
                        "ircs-u",
                        "nntps",
                        "telnets",
                        "submissions",
                        "smtps",
                    ]
                    .contains(&n.as_str())
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict on one packet: the protocol and whether the match is strong.
pub type Guess = (Protocol, bool);

/// Cleartext evidence bits kept per flow.
pub mod clear {
    /// HTTP `Authorization: Basic` (a password, base64 only).
    pub const HTTP_BASIC: u8 = 1;
    /// HTTP `Authorization` with another scheme (a token or digest).
    pub const HTTP_AUTH: u8 = 2;
    /// An HTTP POST carrying a password field or sent to a login path.
    pub const LOGIN_FORM: u8 = 4;
    /// A login command: FTP USER/PASS, POP3 USER/PASS/APOP/AUTH, IMAP LOGIN or
    /// AUTHENTICATE, SMTP AUTH, Redis AUTH, MQTT CONNECT with a password.
    pub const LOGIN: u8 = 8;
    /// The session was upgraded to TLS (STARTTLS, STLS, AUTH TLS) before any login.
    pub const UPGRADED: u8 = 16;
    /// FTP `USER anonymous`: the PASS that follows is no secret.
    pub const ANONYMOUS: u8 = 32;
}

/// Per-flow inspection state (four bytes, kept in the flow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowInspect {
    /// Best guess from the server's side, then the client's: protocol number
    /// with [`STRONG`] set for a strong match; 0 for none.
    pub server: u8,
    pub client: u8,
    /// [`clear`] bits.
    pub clear: u8,
    /// Payload packets inspected so far.
    pub packets: u8,
}

const STRONG: u8 = 0x80;
/// The direction's first payload packet has been looked at.
const EXAMINED: u8 = 0x40;
const PROTO: u8 = 0x3f;
/// Most packets a worker inspects per flow (both directions).
const MAX_INSPECTED: u8 = 2 * INSPECT_PACKETS;

impl FlowInspect {
    /// Looks at one payload prefix of the flow. The protocol is identified on
    /// the first payload packet of each direction only (a banner, a request, a
    /// hello): what follows may be anything, TLS after a STARTTLS included. The
    /// later packets are scanned for cleartext credentials.
    #[inline]
    pub fn inspect(&mut self, t: Transport, to_server: bool, payload: &[u8]) {
        if payload.is_empty() || self.packets >= MAX_INSPECTED {
            return;
        }
        self.packets += 1;
        let slot = if to_server {
            &mut self.client
        } else {
            &mut self.server
        };
        if *slot & EXAMINED == 0 {
            *slot = EXAMINED;
            if let Some((p, strong)) = identify(t, to_server, payload) {
                *slot |= p as u8 | if strong { STRONG } else { 0 };
            }
        }
        if to_server {
            if let Some(p) = self.protocol() {
                self.clear |= scan_credentials(p, payload, self.clear);
            }
        }
    }

    /// The flow's protocol: a strong match beats a weak one, the server's side
    /// beats the client's.
    pub fn protocol(&self) -> Option<Protocol> {
        let (s, c) = (self.server, self.client);
        let pick = if s & STRONG != 0 {
            s
        } else if c & STRONG != 0 {
            c
        } else if s & PROTO != 0 {
            s
        } else {
            c
        };
        Protocol::from_u8(pick & PROTO)
    }

    /// Whether the server's own answer backs the verdict (it was recognised:
    /// the same protocol, or a weak guess such as a bare `220` banner). A
    /// client's request alone says what the client hoped to find, not what
    /// listens on the port.
    pub fn server_confirms(&self) -> bool {
        let s = self.server;
        s & PROTO != 0 && (s & STRONG == 0 || Protocol::from_u8(s & PROTO) == self.protocol())
    }
}

/// Identifies the protocol of one payload prefix, sent to the server side
/// (`to_server`) or from it.
pub fn identify(t: Transport, to_server: bool, p: &[u8]) -> Option<Guess> {
    match t {
        Transport::Tcp => identify_tcp(to_server, p),
        Transport::Udp => identify_udp(p),
        _ => None,
    }
}

fn identify_tcp(to_server: bool, p: &[u8]) -> Option<Guess> {
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

fn identify_udp(p: &[u8]) -> Option<Guess> {
    let strong = |x| Some((x, true));
    if dhcp(p) {
        return strong(Protocol::Dhcp);
    }
    if dtls_record(p) {
        return strong(Protocol::Tls);
    }
    if let Some(g) = quic(p) {
        return Some(g);
    }
    if let Some(g) = sip_or_http(true, p).or_else(|| sip_or_http(false, p)) {
        if g.0 == Protocol::Sip {
            return Some(g);
        }
    }
    if bittorrent_udp(p) {
        return strong(Protocol::Bittorrent);
    }
    if dns_message(p) {
        return strong(Protocol::Dns);
    }
    if ike(p) {
        return None; // IKE headers can pass for NTP
    }
    ntp(p)
}

/// An ISAKMP/IKE header: version 1.0 or 2.0, a known exchange type and a
/// length equal to the datagram (after an optional non-ESP marker).
fn ike(p: &[u8]) -> bool {
    let p = if p.len() >= 4 && p[..4] == [0, 0, 0, 0] {
        &p[4..]
    } else {
        p
    };
    p.len() >= 28
        && matches!(p[17], 0x10 | 0x20)
        && matches!(p[18], 1..=5 | 32..=37)
        && be32(p, 24) as usize == p.len()
}

// ---- helpers -------------------------------------------------------------

#[inline]
fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

#[inline]
fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn starts_ci(p: &[u8], prefix: &[u8]) -> bool {
    p.len() >= prefix.len() && p[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    find_ci(hay, needle).is_some()
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The first line, without its line end (all of `p` if it has none).
fn first_line(p: &[u8]) -> &[u8] {
    let end = p.iter().position(|&b| b == b'\r' || b == b'\n');
    &p[..end.unwrap_or(p.len())]
}

/// The first line is printable text (and ends with a line end, when the
/// prefix holds one).
fn line_is_text(p: &[u8]) -> bool {
    first_line(p)
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
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
fn sip_or_http(to_server: bool, p: &[u8]) -> Option<Guess> {
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

/// A DTLS 1.0/1.2 record (content type, version FEFF/FEFD, epoch, sequence,
/// length): TLS over UDP, reported as `tls`.
fn dtls_record(p: &[u8]) -> bool {
    p.len() >= 13
        && (20..=25).contains(&p[0])
        && p[1] == 0xfe
        && matches!(p[2], 0xff | 0xfd | 0xfc)
        && (13 + be16(p, 11) as usize <= p.len() || p.len() == INSPECT_BYTES)
        && be16(p, 11) > 0
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
fn mqtt_connect(p: &[u8]) -> Option<usize> {
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

/// A DNS message: a sane header and a question (or, for multicast DNS
/// announcements, a first answer) whose name parses.
fn dns_message(p: &[u8]) -> bool {
    if p.len() < 12 {
        return false;
    }
    let flags = be16(p, 2);
    let opcode = (flags >> 11) & 0xf;
    let z = flags & 0x0040;
    let (qd, an, ns, ar) = (be16(p, 4), be16(p, 6), be16(p, 8), be16(p, 10));
    if opcode > 6 || opcode == 3 || z != 0 || an > 256 || ns > 256 || ar > 256 {
        return false;
    }
    let is_response = flags & 0x8000 != 0;
    if !(qd == 1 || (qd == 0 && is_response && an >= 1)) {
        return false;
    }
    let Some(end) = dns_name(p, 12) else {
        return false;
    };
    if end + 4 > p.len() {
        return false;
    }
    let (qtype, class) = (be16(p, end), be16(p, end + 2) & 0x7fff);
    qtype != 0 && matches!(class, 1 | 3 | 4 | 254 | 255)
}

/// Where a (possibly compressed) domain name starting at `at` ends.
fn dns_name(p: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0;
    loop {
        let l = *p.get(at)? as usize;
        if l == 0 {
            return Some(at + 1);
        }
        if l & 0xc0 == 0xc0 {
            p.get(at + 1)?;
            return (((l & 0x3f) << 8 | p[at + 1] as usize) < at).then_some(at + 2);
        }
        if l > 63 {
            return None;
        }
        let label = p.get(at + 1..at + 1 + l)?;
        if !label.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'*' | b'.' | b' ' | b'\'')
                || *b >= 0x80
        }) {
            return None;
        }
        total += l + 1;
        if total > 255 {
            return None;
        }
        at += 1 + l;
    }
}

/// A BOOTP/DHCP message with the DHCP magic cookie.
fn dhcp(p: &[u8]) -> bool {
    p.len() >= 240
        && matches!(p[0], 1 | 2)
        && p[2] <= 16
        && p[3] <= 16
        && be32(p, 236) == 0x6382_5363
}

/// A QUIC long-header packet of a known version (v1, v2, drafts, Google QUIC)
/// with sane connection ID lengths, or a version negotiation.
fn quic(p: &[u8]) -> Option<Guess> {
    if p.len() < 7 || p[0] & 0x80 == 0 {
        return None;
    }
    let version = be32(p, 1);
    let known = version == 1
        || version == 0x6b33_43cf
        || version >> 8 == 0xff_0000
        || (version & 0xffff_ff00 == 0x5130_3400 || version & 0xffff_ff00 == 0x5130_3500);
    let negotiation = version == 0;
    if !(known || negotiation) {
        return None;
    }
    if known && p[0] & 0x40 == 0 && version >> 24 != 0x51 {
        return None; // the fixed bit
    }
    if version >> 24 == 0x51 {
        return Some((Protocol::Quic, p.len() >= 1200));
    }
    let dcid = p[5] as usize;
    let scid_at = 6 + dcid;
    let scid = *p.get(scid_at)? as usize;
    if dcid > 20 || scid > 20 || scid_at + 1 + scid > p.len() {
        return None;
    }
    if negotiation {
        let rest = p.len() - scid_at - 1 - scid;
        return (rest >= 4 && rest % 4 == 0).then_some((Protocol::Quic, false));
    }
    Some((Protocol::Quic, true))
}

/// The BitTorrent DHT (bencoded KRPC) or a UDP tracker connect request.
fn bittorrent_udp(p: &[u8]) -> bool {
    if p.len() >= 16 && be32(p, 0) == 0x417 && be32(p, 4) == 0x2710_1980 && be32(p, 8) == 0 {
        return true;
    }
    p.first() == Some(&b'd')
        && p.len() >= 20
        && find_ci(&p[..p.len().min(48)], b"2:id20:").is_some()
        && (find_ci(p, b"1:y1:q").is_some()
            || find_ci(p, b"1:y1:r").is_some()
            || find_ci(p, b"1:y1:e").is_some())
}

/// NTP: modes 1-5 (time), 6 (control, ntpq) or 7 (private, ntpdc `monlist`).
fn ntp(p: &[u8]) -> Option<Guess> {
    let b = *p.first()?;
    let (vn, mode) = ((b >> 3) & 7, b & 7);
    if !(1..=4).contains(&vn) {
        return None;
    }
    match mode {
        1..=5 if p.len() >= 48 && (p.len() - 48) % 4 == 0 && p.len() <= 48 + 4 * 64 => {
            let (stratum, poll) = (p[1], p[2] as i8);
            let transmit = be32(p, 40) | be32(p, 44);
            // Root delay and dispersion are seconds in 16.16 fixed point: a
            // real clock's are well under 16 s.
            let (delay, dispersion) = (be32(p, 4), be32(p, 8));
            (stratum <= 16
                && (-6..=17).contains(&poll)
                && transmit != 0
                && delay < 0x0010_0000
                && dispersion < 0x0010_0000)
                .then_some((Protocol::Ntp, true))
        }
        6 if p.len() >= 12 && p[1] & 0x1f != 0 && (p.len() - 12) % 4 == 0 => {
            Some((Protocol::Ntp, false))
        }
        7 if p.len() >= 8 && matches!(p[2], 0..=3) => Some((Protocol::Ntp, false)),
        _ => None,
    }
}

// ---- credentials in cleartext ------------------------------------------

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

#[cfg(test)]
mod tests;
