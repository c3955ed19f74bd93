//! The names the reports give to bit sets: why a port is open, what
//! cleartext a flow showed.
use crate::inspect::clear;
use crate::stats::inventory::{ANSWERED, HANDSHAKE, MIDSTREAM};

/// The names of the bits set in `bits`, in the order of `table`.
fn flag_names(bits: u8, table: &[(u8, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// An open port's evidence bits: `handshake`, `answered`, `midstream`.
pub fn evidence(bits: u8) -> Vec<&'static str> {
    flag_names(
        bits,
        &[
            (HANDSHAKE, "handshake"),
            (ANSWERED, "answered"),
            (MIDSTREAM, "midstream"),
        ],
    )
}

/// A flow's cleartext bits: `http-basic`, `http-authorization`, `login-form`,
/// `login`, `tls-upgrade`.
pub fn cleartext(bits: u8) -> Vec<&'static str> {
    flag_names(
        bits,
        &[
            (clear::HTTP_BASIC, "http-basic"),
            (clear::HTTP_AUTH, "http-authorization"),
            (clear::LOGIN_FORM, "login-form"),
            (clear::LOGIN, "login"),
            (clear::UPGRADED, "tls-upgrade"),
        ],
    )
}
