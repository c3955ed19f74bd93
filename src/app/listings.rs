//! `portflow services` (registry look-ups) and `portflow interfaces`.
use super::{load_services, AppError};
use crate::cli::{InterfacesArgs, ListFormat, ServicesArgs};
use portflow::report::table::aligned;
use portflow::services::{ServiceEntry, Services, Source, Transport};
use portflow::source::live::InterfaceInfo;
use std::io::{self, Write};

/// `portflow services`.
pub fn services(args: ServicesArgs) -> Result<u8, AppError> {
    let services = load_services(&args.services)?;
    let mut found = Vec::new();
    for q in &args.queries {
        let entries = look_up(&services, q)?;
        if entries.is_empty() {
            eprintln!("portflow: no registry entry for '{q}'");
        }
        found.extend(entries);
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &found).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        ListFormat::Table if found.is_empty() => {}
        ListFormat::Table => {
            let rows: Vec<[String; 5]> = found.iter().map(service_cells).collect();
            let header = ["PORT", "PROTO", "NAME", "CLASS", "DESCRIPTION"].map(String::from);
            for line in aligned(&header, &rows, &[true; 5]) {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    Ok(if found.is_empty() { 2 } else { 0 })
}

/// The registry entries a query names: `443`, `53/udp`, `ssh`, `ssh/tcp`.
fn look_up(services: &Services, q: &str) -> Result<Vec<ServiceEntry>, AppError> {
    let (num, proto) = match q.split_once('/') {
        Some((n, p)) => {
            let t = Transport::from_name(p)
                .ok_or_else(|| AppError::Usage(format!("unknown protocol '{p}' in '{q}'")))?;
            (n, Some(t))
        }
        None => (q, None),
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
    Ok(entries
        .into_iter()
        .filter(|e| proto.is_none_or(|p| e.transport == p))
        .collect())
}

fn service_cells(e: &ServiceEntry) -> [String; 5] {
    let ports = if e.port_end != e.port {
        format!("{}-{}", e.port, e.port_end)
    } else {
        e.port.to_string()
    };
    let local = if e.source == Source::Local {
        " (local)"
    } else {
        ""
    };
    [
        ports,
        e.transport.as_str().to_string(),
        e.name.clone(),
        e.class.as_str().to_string(),
        format!("{}{local}", e.description),
    ]
}

/// `portflow interfaces`.
pub fn interfaces(args: InterfacesArgs) -> Result<u8, AppError> {
    let list = portflow::source::live::interfaces()?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &list).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        ListFormat::Table => {
            let rows: Vec<[String; 4]> = list.iter().map(interface_cells).collect();
            let header = ["NAME", "FLAGS", "ADDRESSES", "DESCRIPTION"].map(String::from);
            for line in aligned(&header, &rows, &[true; 4]) {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

fn interface_cells(i: &InterfaceInfo) -> [String; 4] {
    let flags: Vec<&str> = [
        (i.up, "up"),
        (i.running, "running"),
        (i.loopback, "loopback"),
        (i.wireless, "wireless"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name)
    .collect();
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    [
        i.name.clone(),
        or_dash(flags.join(",")),
        or_dash(i.addresses.join(" ")),
        i.description.clone().unwrap_or_else(|| "-".into()),
    ]
}
