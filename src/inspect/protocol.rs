//! The application protocols portflow recognises, and which IANA
//! registrations each one fits (for `service-mismatch` findings).

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
