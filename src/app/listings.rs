//! `portflow services` (registry look-ups) and `portflow interfaces`.
use super::{load_services, AppError};
use crate::cli::{Format, InterfacesArgs, ServicesArgs};
use portflow::services::{Source, Transport};
use std::io::{self, Write};

/// `portflow services`.
pub fn services(args: ServicesArgs) -> Result<u8, AppError> {
    let services = load_services(&args.services)?;
    let mut found = Vec::new();
    for q in &args.queries {
        let (num, proto) =
            match q.split_once('/') {
                Some((n, p)) => (
                    n,
                    Some(Transport::from_name(p).ok_or_else(|| {
                        AppError::Usage(format!("unknown protocol '{p}' in '{q}'"))
                    })?),
                ),
                None => (q.as_str(), None),
            };
        let entries = match num.parse::<u32>() {
            Ok(n) if n <= 65535 => services.by_port(n as u16),
            Ok(n) => {
                return Err(AppError::Usage(format!(
                    "port {n} is out of range (0-65535)"
                )))
            }
            Err(_) => services.by_name(num),
        };
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| proto.is_none_or(|p| e.transport == p))
            .collect();
        if entries.is_empty() {
            eprintln!("portflow: no registry entry for '{q}'");
        }
        found.extend(entries);
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        Format::Json | Format::Ndjson => {
            serde_json::to_writer_pretty(&mut out, &found).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Table => {
            for e in &found {
                let range = if e.port_end != e.port {
                    format!("{}-{}", e.port, e.port_end)
                } else {
                    e.port.to_string()
                };
                writeln!(
                    out,
                    "{:<6} {:<5} {:<24} {:<10} {}{}",
                    range,
                    e.transport.as_str(),
                    e.name,
                    e.class.as_str(),
                    e.description,
                    if e.source == Source::Local {
                        " (local)"
                    } else {
                        ""
                    }
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if found.is_empty() { 2 } else { 0 })
}

/// `portflow interfaces`.
pub fn interfaces(args: InterfacesArgs) -> Result<u8, AppError> {
    let list = portflow::source::live::interfaces()?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        Format::Json | Format::Ndjson => {
            serde_json::to_writer_pretty(&mut out, &list).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Table => {
            for i in &list {
                let mut flags = Vec::new();
                for (on, name) in [
                    (i.up, "up"),
                    (i.running, "running"),
                    (i.loopback, "loopback"),
                    (i.wireless, "wireless"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                writeln!(
                    out,
                    "{:<16} {:<24} {}{}",
                    i.name,
                    flags.join(","),
                    i.addresses.join(" "),
                    i.description
                        .as_deref()
                        .map(|d| format!("  ({d})"))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}
