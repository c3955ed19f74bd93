//! Findings from what the payload showed ([`super::protocol`]):
//!
//! - `service-mismatch`: a server port speaks a protocol other than the one
//!   the port is registered for. **high** when the port is registered for
//!   another protocol portflow recognises (SSH on 443, TLS on 53, HTTP on 22);
//!   **medium** on another well-known port; **low** on a registered or
//!   unassigned port above 1023 (HTTP on 31337 `eldim`). A registered
//!   alternative is not a mismatch (HTTP on 8080 `http-alt`, TLS on 8443
//!   `pcsync-https`). Only flows whose server answered in a recognisable way
//!   count: a probe sent to a port says nothing about what listens there. Peer-to-peer protocols that
//!   pick ports at random (BitTorrent) are not flagged above port 1023.
//! - `cleartext`: credentials or sessions without encryption, by detected
//!   protocol whatever the port. **high**: a Telnet session; a login seen in
//!   FTP, POP3, IMAP (before any STARTTLS/STLS/AUTH TLS); SMTP AUTH before
//!   STARTTLS; HTTP Basic credentials or a password posted in a form; Redis
//!   AUTH; an MQTT password. **medium**: an FTP, POP3 or IMAP session with no
//!   upgrade to TLS (and no login in its first packets); an HTTP
//!   `Authorization` header with another scheme (a bearer token or digest).
use super::{Exposure, Finding, Kind, PortSite, Severity};
use crate::inspect::{clear, Protocol};
use crate::services::{Services, Transport};
use crate::stats::distinct::Distinct;
use crate::stats::inventory::{Detected, Inventory, OpenPortKey};

/// The port, protocol and flows a payload finding is about.
fn site<'a>(k: &'a OpenPortKey, p: Protocol, d: &Detected) -> PortSite<'a> {
    PortSite {
        key: k,
        detected: Some(p),
        span: d.span,
        packets: d.packets,
        bytes: d.bytes,
    }
}

/// The severity of protocol `p` served on a port, or `None` when it fits.
pub fn mismatch(p: Protocol, services: &Services, t: Transport, port: u16) -> Option<Severity> {
    judge(p, services, t, port).map(|(severity, _)| severity)
}

/// [`mismatch`], with the protocol the port is registered for, as portflow
/// names it (the first that fits one of its registrations), if any.
fn judge(
    p: Protocol,
    services: &Services,
    t: Transport,
    port: u16,
) -> Option<(Severity, Option<Protocol>)> {
    let regs = services.registrations(t, port);
    let fits = |q: Protocol| regs.iter().any(|(n, d)| q.fits_registration(n, d));
    if fits(p) || (p.roams() && port >= 1024) {
        return None;
    }
    // `p` does not fit, so any protocol that does is another one.
    let registered = Protocol::ALL.iter().copied().find(|q| fits(*q));
    let severity = if registered.is_some() {
        Severity::High
    } else if port < 1024 {
        Severity::Medium
    } else {
        Severity::Low
    };
    Some((severity, registered))
}

/// `service-mismatch` findings, one per (host, transport, port, protocol).
pub fn service_mismatches(inv: &Inventory, services: &Services) -> Vec<Finding> {
    let mut out = Vec::new();
    for ((k, p), d) in &inv.detected {
        if d.confirmed == 0 {
            continue;
        }
        let Some((severity, registered)) = judge(*p, services, k.transport, k.port) else {
            continue;
        };
        let kind = Kind::ServiceMismatch { registered };
        out.push(site(k, *p, d).finding(kind, severity, d.confirmed, &d.clients));
    }
    out
}

/// What cleartext one detection shows: (severity, exposure, flows, clients),
/// in a fixed order; exposures in no flow are left out.
fn exposures(p: Protocol, d: &Detected) -> Vec<(Severity, Exposure, u64, &Distinct)> {
    use clear::*;
    use Exposure::*;
    use Severity::{High, Medium};
    let login = d.with(LOGIN);
    let all = match p {
        Protocol::Telnet => vec![(High, TelnetSession, d.span.flows, &d.clients)],
        Protocol::Ftp | Protocol::Pop3 | Protocol::Imap => {
            let plain = d.span.flows.saturating_sub(d.with(UPGRADED) + login);
            vec![
                (High, Login, login, &d.clear_clients),
                (Medium, SessionWithoutTls, plain, &d.clients),
            ]
        }
        Protocol::Smtp => vec![(High, SmtpAuth, login, &d.clear_clients)],
        Protocol::Http => vec![
            (High, HttpBasic, d.with(HTTP_BASIC), &d.clear_clients),
            (High, LoginForm, d.with(LOGIN_FORM), &d.clear_clients),
            (
                Medium,
                HttpAuthorization,
                d.with(HTTP_AUTH),
                &d.clear_clients,
            ),
        ],
        Protocol::Redis => vec![(High, RedisAuth, login, &d.clear_clients)],
        Protocol::Mqtt => vec![(High, MqttPassword, login, &d.clear_clients)],
        _ => Vec::new(),
    };
    all.into_iter().filter(|e| e.2 > 0).collect()
}

/// `cleartext` findings, one per (host, transport, port, protocol, exposure).
pub fn cleartext(inv: &Inventory) -> Vec<Finding> {
    let mut out = Vec::new();
    for ((k, p), d) in &inv.detected {
        for (severity, exposure, flows, clients) in exposures(*p, d) {
            let kind = Kind::Cleartext(exposure);
            out.push(site(k, *p, d).finding(kind, severity, flows, clients));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{tcp_flags as F, v4_mapped};
    use crate::stats::flow::{FlowKey, FlowPacket, FlowTable, Timeouts};
    use std::sync::Arc;

    /// A TCP conversation: handshake, then each (to_server, payload) in turn.
    fn conversation(t: &mut FlowTable, client: u8, port: u16, talk: &[(bool, &[u8])]) {
        let (c, s) = ([10, 0, 0, client], [10, 0, 1, 1]);
        let cport = 40_000 + client as u16;
        let mut ts = client as u64 * 1_000_000_000;
        let mut send = |to_server: bool, flags: u8, payload: &[u8]| {
            let (src, sp, dst, dp) = if to_server {
                (c, cport, s, port)
            } else {
                (s, port, c, cport)
            };
            let (key, from_lo) =
                FlowKey::new(Transport::Tcp, v4_mapped(&src), sp, v4_mapped(&dst), dp);
            ts += 1000;
            let p = FlowPacket::new(key, from_lo, ts, 60 + payload.len() as u32, flags);
            t.account(&p, payload);
        };
        send(true, F::SYN, b"");
        send(false, F::SYN | F::ACK, b"");
        send(true, F::ACK, b"");
        for (to_server, payload) in talk {
            send(*to_server, F::ACK | F::PSH, payload);
        }
    }

    /// One conversation: (to_server, payload) in turn.
    type Talk<'a> = &'a [(bool, &'a [u8])];

    fn findings(talks: &[(u16, Talk)]) -> Vec<(&'static str, Severity, u16, String)> {
        let s = Arc::new(Services::iana());
        let mut t = FlowTable::new(s.clone(), Timeouts::default(), 1000, false);
        for (i, (port, talk)) in talks.iter().enumerate() {
            conversation(&mut t, i as u8 + 1, *port, talk);
        }
        t.finish_all();
        let mut f = service_mismatches(&t.inventory, &s);
        f.extend(cleartext(&t.inventory));
        crate::detect::sort(&mut f);
        f.into_iter()
            .map(|f| {
                (
                    f.kind.name(),
                    f.severity,
                    f.port.unwrap(),
                    f.detected.unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn ssh_on_443_is_a_high_mismatch_http_on_8080_is_none() {
        let ssh: &[(bool, &[u8])] = &[
            (false, b"SSH-2.0-OpenSSH_9.2\r\n"),
            (true, b"SSH-2.0-PuTTY\r\n"),
        ];
        let http: &[(bool, &[u8])] = &[
            (true, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            (false, b"HTTP/1.1 200 OK\r\n\r\n"),
        ];
        assert_eq!(
            findings(&[(443, ssh), (8080, http), (22, ssh)]),
            vec![("service-mismatch", Severity::High, 443, "ssh".into())]
        );
    }

    #[test]
    fn an_unanswered_probe_is_not_a_mismatch() {
        let probe: &[(bool, &[u8])] = &[(true, b"GET / HTTP/1.0\r\n\r\n")];
        let odd_answer: &[(bool, &[u8])] = &[
            (true, b"GET / HTTP/1.0\r\n\r\n"),
            (false, &[0, 1, 0, 0, 0, 3]),
        ];
        assert_eq!(findings(&[(502, probe), (502, odd_answer)]), vec![]);
    }

    #[test]
    fn cleartext_by_protocol_not_by_port() {
        let basic: &[(bool, &[u8])] = &[
            (true, b"GET / HTTP/1.1\r\nAuthorization: Basic dTpw\r\n\r\n"),
            (false, b"HTTP/1.1 200 OK\r\n\r\n"),
        ];
        let telnet: &[(bool, &[u8])] = &[(false, &[0xff, 0xfd, 0x18]), (true, &[0xff, 0xfb, 0x18])];
        let smtp_tls: &[(bool, &[u8])] = &[
            (false, b"220 mx ESMTP\r\n"),
            (true, b"EHLO me\r\n"),
            (false, b"250 STARTTLS\r\n"),
            (true, b"STARTTLS\r\n"),
        ];
        let smtp_auth: &[(bool, &[u8])] = &[
            (false, b"220 mx ESMTP\r\n"),
            (true, b"EHLO me\r\n"),
            (true, b"AUTH LOGIN\r\n"),
        ];
        let imap_tls: &[(bool, &[u8])] = &[(false, b"* OK ready\r\n"), (true, b"a1 STARTTLS\r\n")];
        let got = findings(&[
            (80, basic),
            (2323, telnet),
            (25, smtp_tls),
            (587, smtp_auth),
            (143, imap_tls),
        ]);
        assert_eq!(
            got,
            vec![
                ("cleartext", Severity::High, 80, "http".into()),
                ("cleartext", Severity::High, 587, "smtp".into()),
                ("cleartext", Severity::High, 2323, "telnet".into()),
                ("service-mismatch", Severity::Low, 2323, "telnet".into()),
            ]
        );
    }

    #[test]
    fn a_clients_ephemeral_port_never_gets_a_protocol_finding() {
        // The client talks first from a registered port (5000); the server is on 50000.
        let http: &[(bool, &[u8])] = &[
            (true, b"GET / HTTP/1.1\r\n\r\n"),
            (false, b"HTTP/1.1 200 OK\r\n\r\n"),
        ];
        let got = findings(&[(50_000, http)]);
        assert_eq!(
            got,
            vec![("service-mismatch", Severity::Low, 50_000, "http".into())]
        );
    }

    #[test]
    fn registered_alternatives_are_not_mismatches() {
        let s = Services::iana();
        let t = Transport::Tcp;
        assert_eq!(mismatch(Protocol::Http, &s, t, 8080), None);
        assert_eq!(mismatch(Protocol::Http, &s, t, 80), None);
        assert_eq!(mismatch(Protocol::Tls, &s, t, 443), None);
        assert_eq!(mismatch(Protocol::Tls, &s, t, 8443), None);
        assert_eq!(mismatch(Protocol::Tls, &s, t, 993), None);
        assert_eq!(mismatch(Protocol::Quic, &s, Transport::Udp, 443), None);
        assert_eq!(mismatch(Protocol::Dns, &s, Transport::Udp, 5353), None);
        assert_eq!(mismatch(Protocol::Ssh, &s, t, 22), None);
        assert_eq!(mismatch(Protocol::Smb, &s, t, 445), None);
    }

    #[test]
    fn mismatches_by_severity() {
        let s = Services::iana();
        let t = Transport::Tcp;
        assert_eq!(mismatch(Protocol::Ssh, &s, t, 443), Some(Severity::High));
        assert_eq!(mismatch(Protocol::Ssh, &s, t, 80), Some(Severity::High));
        assert_eq!(mismatch(Protocol::Tls, &s, t, 53), Some(Severity::High));
        assert_eq!(mismatch(Protocol::Http, &s, t, 31337), Some(Severity::Low));
        assert_eq!(mismatch(Protocol::Http, &s, t, 666), Some(Severity::Medium));
        assert_eq!(mismatch(Protocol::Bittorrent, &s, t, 51413), None);
        assert_eq!(
            mismatch(Protocol::Bittorrent, &s, t, 80),
            Some(Severity::High)
        );
    }
}
