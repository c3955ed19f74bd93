//! Each signature on a real-looking first packet, the ambiguous cases, and
//! random bytes (which must almost never look like anything strong).
use super::*;
use crate::services::Transport::{Tcp, Udp};

fn tcp_c(p: &[u8]) -> Option<Guess> {
    identify(Tcp, true, p)
}
fn tcp_s(p: &[u8]) -> Option<Guess> {
    identify(Tcp, false, p)
}
fn udp(p: &[u8]) -> Option<Guess> {
    identify(Udp, true, p)
}
fn strong(p: Protocol) -> Option<Guess> {
    Some((p, true))
}

fn client_hello() -> Vec<u8> {
    let mut body = vec![1, 0, 0, 0, 3, 3];
    body.extend_from_slice(&[0x42; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let hl = body.len() - 4;
    body[1..4].copy_from_slice(&(hl as u32).to_be_bytes()[1..]);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
    rec.extend_from_slice(&body);
    rec
}

fn dns_query(name: &str) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    p
}

#[test]
fn http_request_and_response() {
    assert_eq!(
        tcp_c(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
        strong(Protocol::Http)
    );
    assert_eq!(tcp_c(b"POST /login HTTP/1.0\r\n"), strong(Protocol::Http));
    assert_eq!(
        tcp_c(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        strong(Protocol::Http)
    );
    // A request line cut off by the end of the prefix.
    assert_eq!(tcp_c(b"GET /a/very/long/path"), strong(Protocol::Http));
    assert_eq!(
        tcp_s(b"HTTP/1.1 200 OK\r\nServer: x\r\n"),
        strong(Protocol::Http)
    );
    assert_eq!(tcp_c(b"GETS /x HTTP/1.1\r\n"), None);
    assert_eq!(tcp_c(b"GET nothing\r\n"), None);
}

#[test]
fn sip_is_not_http() {
    let invite = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n";
    assert_eq!(udp(invite), strong(Protocol::Sip));
    assert_eq!(tcp_c(invite), strong(Protocol::Sip));
    assert_eq!(
        tcp_c(b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"),
        strong(Protocol::Sip)
    );
    assert_eq!(udp(b"SIP/2.0 180 Ringing\r\n"), strong(Protocol::Sip));
    assert_eq!(tcp_c(b"OPTIONS * HTTP/1.1\r\n"), strong(Protocol::Http));
}

#[test]
fn tls_hello_and_mid_session_records() {
    assert_eq!(tcp_c(&client_hello()), strong(Protocol::Tls));
    let mut server_hello = client_hello();
    server_hello[5] = 2;
    assert_eq!(tcp_s(&server_hello), strong(Protocol::Tls));
    assert_eq!(
        tcp_c(&[0x17, 3, 3, 0, 40, 1, 2, 3, 4]),
        Some((Protocol::Tls, false))
    );
    assert_eq!(tcp_c(&[0x16, 3, 9, 0, 40, 1, 2, 3]), None);
}

#[test]
fn ssh_banner_either_side() {
    assert_eq!(
        tcp_s(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
        strong(Protocol::Ssh)
    );
    assert_eq!(tcp_c(b"SSH-2.0-libssh2_1.10.0\r\n"), strong(Protocol::Ssh));
    assert_eq!(tcp_s(b"SSH-"), None);
}

#[test]
fn dns_over_udp_and_tcp() {
    let q = dns_query("www.example.com");
    assert_eq!(udp(&q), strong(Protocol::Dns));
    let mut t = (q.len() as u16).to_be_bytes().to_vec();
    t.extend_from_slice(&q);
    assert_eq!(tcp_c(&t), strong(Protocol::Dns));
    let mut bad = q.clone();
    bad[12] = 70; // label longer than 63
    assert_eq!(udp(&bad), None);
    let mut two = q;
    two[5] = 2; // two questions: not something resolvers send
    assert_eq!(udp(&two), None);
}

#[test]
fn mail_banners_and_commands() {
    assert_eq!(
        tcp_s(b"220 mail.example.com ESMTP Postfix (Debian)\r\n"),
        strong(Protocol::Smtp)
    );
    assert_eq!(tcp_s(b"220 (vsFTPd 3.0.3)\r\n"), strong(Protocol::Ftp));
    assert_eq!(tcp_s(b"220 Welcome\r\n"), Some((Protocol::Ftp, false)));
    assert_eq!(tcp_c(b"EHLO client.example\r\n"), strong(Protocol::Smtp));
    assert_eq!(tcp_c(b"FEAT\r\n"), strong(Protocol::Ftp));
    assert_eq!(tcp_s(b"+OK Dovecot ready.\r\n"), strong(Protocol::Pop3));
    assert_eq!(tcp_c(b"CAPA\r\n"), strong(Protocol::Pop3));
    assert_eq!(
        tcp_s(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n"),
        strong(Protocol::Imap)
    );
    assert_eq!(
        tcp_c(b"a001 LOGIN alice secret\r\n"),
        strong(Protocol::Imap)
    );
    assert_eq!(tcp_c(b"A1 CAPABILITY\r\n"), strong(Protocol::Imap));
}

#[test]
fn only_the_first_packet_of_a_direction_names_the_protocol() {
    // PostgreSQL's SSLRequest, the server's 'S', then TLS: still PostgreSQL.
    let mut f = FlowInspect::default();
    f.inspect(Tcp, true, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    f.inspect(Tcp, false, b"S");
    f.inspect(Tcp, true, &client_hello());
    assert_eq!(f.protocol(), Some(Protocol::Postgresql));
    assert!(!f.server_confirms(), "a bare 'S' is not recognised");
}

#[test]
fn a_probe_the_server_does_not_answer_in_kind_is_unconfirmed() {
    let mut f = FlowInspect::default();
    f.inspect(Tcp, true, b"GET / HTTP/1.0\r\n\r\n");
    f.inspect(
        Tcp,
        false,
        &[0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x83, 0x01],
    );
    assert_eq!(f.protocol(), Some(Protocol::Http));
    assert!(!f.server_confirms());
    f = FlowInspect::default();
    f.inspect(Tcp, true, b"GET / HTTP/1.0\r\n\r\n");
    f.inspect(Tcp, false, b"HTTP/1.0 200 OK\r\n");
    assert!(f.server_confirms());
}

#[test]
fn ike_is_not_ntp() {
    let mut ike = vec![0x5a; 8];
    ike.extend_from_slice(&[0; 8]);
    ike.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0]);
    ike.resize(48, 0x11);
    let n = ike.len() as u32;
    ike[24..28].copy_from_slice(&n.to_be_bytes());
    ike[0] = 0x23; // would read as NTP v4 client
    ike[1] = 0;
    ike[2] = 6;
    assert_eq!(udp(&ike), None);
}

#[test]
fn a_weak_banner_gives_way_to_a_strong_command() {
    let mut f = FlowInspect::default();
    f.inspect(Tcp, false, b"220 Welcome\r\n");
    assert_eq!(f.protocol(), Some(Protocol::Ftp));
    f.inspect(Tcp, true, b"EHLO me\r\n");
    assert_eq!(f.protocol(), Some(Protocol::Smtp));
    // POP3 and FTP share USER: the server's banner decides.
    let mut g = FlowInspect::default();
    g.inspect(Tcp, false, b"+OK POP3 ready\r\n");
    g.inspect(Tcp, true, b"USER alice\r\n");
    assert_eq!(g.protocol(), Some(Protocol::Pop3));
    assert_eq!(g.clear & clear::LOGIN, clear::LOGIN);
}

#[test]
fn telnet_negotiation() {
    assert_eq!(
        tcp_s(&[0xff, 0xfd, 0x18, 0xff, 0xfd, 0x20]),
        strong(Protocol::Telnet)
    );
    assert_eq!(tcp_c(&[0xff, 0xfb, 0x18]), strong(Protocol::Telnet));
    assert_eq!(tcp_s(&[0xff, 0x01, 0x18]), None);
}

#[test]
fn rdp_connection_request_and_confirm() {
    let mut cr = vec![3, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
    cr.extend_from_slice(b"Cookie: mstshash=admin\r\n");
    cr.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
    let n = cr.len();
    cr[2..4].copy_from_slice(&(n as u16).to_be_bytes());
    cr[4] = (n - 5) as u8;
    assert_eq!(tcp_c(&cr), strong(Protocol::Rdp));
    let cc = [
        3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 1, 0, 0, 0,
    ];
    assert_eq!(tcp_s(&cc), strong(Protocol::Rdp));
    // ISO-TSAP without RDP's negotiation (S7comm on 102): a weak guess only.
    let plain = [
        3, 0, 0, 22, 17, 0xe0, 0, 0, 0, 1, 0, 0xc1, 2, 1, 0, 0xc2, 2, 1, 2, 0xc0, 1, 9,
    ];
    assert_eq!(tcp_c(&plain), Some((Protocol::Rdp, false)));
}

#[test]
fn smb_dialects() {
    let mut smb2 = vec![0, 0, 0, 100, 0xfe, b'S', b'M', b'B', 64, 0];
    smb2.resize(104, 0);
    assert_eq!(tcp_c(&smb2), strong(Protocol::Smb));
    let smb1 = [0, 0, 0, 50, 0xff, b'S', b'M', b'B', 0x72];
    assert_eq!(tcp_s(&smb1), strong(Protocol::Smb));
}

#[test]
fn databases() {
    let mut greeting = vec![0, 0, 0, 0, 0x0a];
    greeting.extend_from_slice(b"8.0.36-0+deb12u1\0");
    greeting.extend_from_slice(&[
        1, 0, 0, 0, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0,
    ]);
    let n = greeting.len() - 4;
    greeting[0] = n as u8;
    assert_eq!(tcp_s(&greeting), strong(Protocol::Mysql));
    let mut denied = b"\0\0\0\0\xff\x6a\x04Host '10.0.0.1' is not allowed to connect".to_vec();
    denied[0] = (denied.len() - 4) as u8;
    assert_eq!(tcp_s(&denied), strong(Protocol::Mysql));
    denied[0] += 1;
    assert_eq!(tcp_s(&denied), None);

    let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
    startup.extend_from_slice(b"user\0postgres\0database\0db\0\0");
    let n = startup.len() as u32;
    startup[..4].copy_from_slice(&n.to_be_bytes());
    assert_eq!(tcp_c(&startup), strong(Protocol::Postgresql));
    assert_eq!(
        tcp_c(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
        strong(Protocol::Postgresql)
    );
    assert_eq!(
        tcp_s(&[b'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4]),
        strong(Protocol::Postgresql)
    );

    assert_eq!(
        tcp_c(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"),
        strong(Protocol::Redis)
    );
    assert_eq!(tcp_s(b"+PONG\r\n"), strong(Protocol::Redis));
    assert_eq!(tcp_s(b"+OK\r\n"), Some((Protocol::Redis, false)));
    assert_eq!(
        tcp_s(b"-ERR unknown command '$0'\r\n"),
        strong(Protocol::Redis)
    );
}

#[test]
fn mqtt_connect_and_credentials() {
    // CONNECT, MQTT 3.1.1, flags: user + password + clean session.
    let mut c = vec![0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 60];
    c.extend_from_slice(&[0, 2, b'i', b'd', 0, 1, b'u', 0, 1, b'p']);
    c[1] = (c.len() - 2) as u8;
    assert_eq!(tcp_c(&c), strong(Protocol::Mqtt));
    assert_eq!(scan_credentials(Protocol::Mqtt, &c, 0), clear::LOGIN);
    c[9] = 0x02;
    assert_eq!(scan_credentials(Protocol::Mqtt, &c, 0), 0);
}

#[test]
fn udp_protocols() {
    let mut ntp = vec![0x23, 0, 6, 0xec];
    ntp.resize(48, 0);
    ntp[40..44].copy_from_slice(&0xe9c5_0000u32.to_be_bytes());
    assert_eq!(udp(&ntp), strong(Protocol::Ntp));
    let monlist = [0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0];
    assert_eq!(udp(&monlist), Some((Protocol::Ntp, false)));

    let mut dhcp = vec![1, 1, 6, 0];
    dhcp.resize(236, 0);
    dhcp.extend_from_slice(&[0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255]);
    assert_eq!(udp(&dhcp), strong(Protocol::Dhcp));

    let mut initial = vec![0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    initial.resize(1200, 0);
    assert_eq!(udp(&initial), strong(Protocol::Quic));
    let mut unknown_version = initial.clone();
    unknown_version[1..5].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    assert_eq!(udp(&unknown_version), None);

    let dht = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    assert_eq!(udp(dht), strong(Protocol::Bittorrent));
    let mut hs = vec![19];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 48]);
    assert_eq!(tcp_c(&hs), strong(Protocol::Bittorrent));
}

#[test]
fn random_bytes_rarely_look_like_anything_strong() {
    let mut rng = portflow_synth::Rng::new(42);
    let mut strong_hits = 0;
    for i in 0..20_000 {
        let n = rng.range(1, 600) as usize;
        let p = rng.bytes(n);
        let t = if i % 2 == 0 { Tcp } else { Udp };
        if let Some((_, true)) = identify(t, i % 4 < 2, &p) {
            strong_hits += 1;
        }
    }
    // Short DNS-like and NTP-like headers are the only plausible accidents.
    assert!(
        strong_hits < 40,
        "{strong_hits} strong matches on random bytes"
    );
}

#[test]
fn truncations_never_panic() {
    let samples: Vec<Vec<u8>> = vec![
        client_hello(),
        dns_query("a.b"),
        b"GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n".to_vec(),
        vec![0x10, 0x80, 0x80, 0x80, 0x80, 0x80],
        vec![0xc3, 0, 0, 0, 1, 20],
        vec![0, 0, 0, 9, 0, 3, 0, 0, b'u'],
    ];
    for s in samples {
        for cut in 0..=s.len() {
            for t in [Tcp, Udp] {
                for dir in [true, false] {
                    let _ = identify(t, dir, &s[..cut]);
                }
            }
            for p in Protocol::ALL {
                let _ = scan_credentials(p, &s[..cut], 0);
            }
        }
    }
}

#[test]
fn http_credentials() {
    use clear::*;
    let basic = b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n";
    assert_eq!(scan_credentials(Protocol::Http, basic, 0), HTTP_BASIC);
    let bearer = b"GET / HTTP/1.1\r\nauthorization: Bearer abc\r\n\r\n";
    assert_eq!(scan_credentials(Protocol::Http, bearer, 0), HTTP_AUTH);
    let form = b"POST /account HTTP/1.1\r\nHost: x\r\n\r\nuser=a&password=b";
    assert_eq!(scan_credentials(Protocol::Http, form, 0), LOGIN_FORM);
    let login = b"POST /wp-login.php HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(scan_credentials(Protocol::Http, login, 0), LOGIN_FORM);
    // The body in the packet after the headers.
    assert_eq!(
        scan_credentials(Protocol::Http, b"user=a&pwd=b", 0),
        LOGIN_FORM
    );
    let plain = b"GET /bypass=1 HTTP/1.1\r\nCookie: pass=1\r\n\r\n";
    assert_eq!(scan_credentials(Protocol::Http, plain, 0), 0);
}

#[test]
fn mail_credentials_and_upgrades() {
    use clear::*;
    // (protocol, client bytes, bits already seen on the flow, bits found)
    let cases: [(Protocol, &[u8], u8, u8); 10] = [
        (Protocol::Smtp, b"AUTH PLAIN AGFAYg==\r\n", 0, LOGIN),
        (Protocol::Smtp, b"STARTTLS\r\n", 0, UPGRADED),
        (Protocol::Smtp, b"AUTH PLAIN x\r\n", UPGRADED, 0),
        (Protocol::Imap, b"a1 STARTTLS\r\n", 0, UPGRADED),
        (Protocol::Imap, b"a2 login bob pw\r\n", 0, LOGIN),
        (Protocol::Pop3, b"STLS\r\n", 0, UPGRADED),
        (Protocol::Ftp, b"AUTH TLS\r\n", 0, UPGRADED),
        (Protocol::Ftp, b"USER anonymous\r\n", 0, ANONYMOUS),
        (Protocol::Ftp, b"PASS me@x\r\n", ANONYMOUS, 0),
        (Protocol::Ftp, b"USER bob\r\n", 0, LOGIN),
    ];
    for (p, bytes, seen, want) in cases {
        assert_eq!(
            scan_credentials(p, bytes, seen),
            want,
            "{p:?} {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn registrations_that_fit() {
    assert!(Protocol::Http.fits_registration("http-alt", "HTTP Alternate (see port 80)"));
    assert!(!Protocol::Http.fits_registration("eldim", "eldim is a secure file upload proxy"));
    assert!(Protocol::Tls.fits_registration("https", "http protocol over TLS/SSL"));
    assert!(Protocol::Tls.fits_registration("pcsync-https", "PCsync HTTPS"));
    assert!(Protocol::Tls.fits_registration("imaps", "IMAP over TLS protocol"));
    assert!(!Protocol::Tls.fits_registration("domain", "Domain Name Server"));
    assert!(Protocol::Quic.fits_registration("https", "http protocol over TLS/SSL"));
    assert!(!Protocol::Ssh.fits_registration("https", "http protocol over TLS/SSL"));
}

#[test]
fn irc_is_not_ftp() {
    assert_eq!(
        tcp_c(b"NICK alice\r\nUSER alice 0 * :Alice\r\n"),
        strong(Protocol::Irc)
    );
    assert_eq!(tcp_c(b"USER alice 0 * :Alice\r\n"), None);
    assert_eq!(
        tcp_s(b":irc.example.net NOTICE * :*** Looking up your hostname\r\n"),
        strong(Protocol::Irc)
    );
    assert_eq!(tcp_c(b"USER bob\r\n"), Some((Protocol::Ftp, false)));
}

#[test]
fn dtls_is_tls_not_ntp() {
    let mut r = vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40];
    r.resize(13 + 40, 7);
    assert_eq!(udp(&r), strong(Protocol::Tls));
}
