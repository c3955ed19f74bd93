//! `read --format csv`: each table and the flows hold the JSON report's
//! numbers, row for row, as RFC 4180 CSV with a header row.
mod support;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use support::*;

/// The CSV `read` writes for `file` with `args`: rows as column → value.
fn csv_rows(file: &Path, args: &[&str]) -> Vec<HashMap<String, String>> {
    let out = portflow()
        .args(["read", "-q", "--format", "csv"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), header.len(), "a full row");
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// A JSON value as the CSV writes it (null: empty).
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `row[column]` equals the JSON value at `path` (dots between keys).
fn same(row: &HashMap<String, String>, column: &str, v: &Value, path: &str) {
    let got = path.split('.').fold(v, |v, k| &v[k]);
    assert_eq!(row[column], text(got), "{column} vs {path}");
}

fn files() -> Vec<std::path::PathBuf> {
    let mut files = vec![
        fixture("generated/eth.pcap"),
        fixture("generated/scan.pcap"),
        fixture("generated/tunnels.pcap"),
    ];
    files.extend(files_under(&fixture("corpus")).into_iter().take(6));
    files
}

#[test]
fn csv_tables_hold_the_json_reports_numbers() {
    for file in files() {
        let at = file.display().to_string();
        let json = json_report(&[&file], &[]);
        let ports = csv_rows(&file, &[]);
        let expected = json["ports"].as_array().unwrap();
        assert_eq!(ports.len(), expected.len(), "{at}: port rows");
        for (row, p) in ports.iter().zip(expected) {
            for (column, path) in [
                ("proto", "proto"),
                ("port", "port"),
                ("service", "service"),
                ("class", "class"),
                ("packets", "packets"),
                ("bytes", "bytes"),
                ("flows", "flows"),
                ("clients", "clients"),
                ("servers", "servers"),
                ("to_server_packets", "to_server.packets"),
                ("to_client_bytes", "to_client.bytes"),
                ("first_seen", "first_seen"),
                ("tcp_syn", "tcp.syn"),
                ("size_p99", "packet_size.p99"),
                ("handshake_rtt_us_p50", "handshake_rtt_us.p50"),
            ] {
                same(row, column, p, path);
            }
        }
        let services = csv_rows(&file, &["--table", "services"]);
        let expected = json["services"].as_array().unwrap();
        assert_eq!(services.len(), expected.len(), "{at}: open ports");
        for (row, s) in services.iter().zip(expected) {
            for c in [
                "host", "proto", "port", "detected", "flows", "clients", "bytes",
            ] {
                same(row, c, s, c);
            }
        }
        let findings = csv_rows(&file, &["--table", "findings"]);
        let expected = json["findings"].as_array().unwrap();
        assert_eq!(findings.len(), expected.len(), "{at}: findings");
        for (row, f) in findings.iter().zip(expected) {
            for c in ["kind", "severity", "host", "src", "port", "detail"] {
                same(row, c, f, c);
            }
            same(row, "attempts", f, "evidence.attempts");
        }
        let closed = csv_rows(&file, &["--table", "closed-ports"]);
        assert_eq!(closed.len(), json["closed_ports"].as_array().unwrap().len());
    }
}

#[test]
fn csv_flows_hold_the_flow_records() {
    for file in files() {
        let out = portflow()
            .args(["read", "-q", "--flows"])
            .arg(&file)
            .output()
            .unwrap();
        let records: Vec<Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let rows = csv_rows(&file, &["--flows"]);
        assert_eq!(rows.len(), records.len(), "{}", file.display());
        for (row, r) in rows.iter().zip(&records) {
            for (column, path) in [
                ("proto", "proto"),
                ("client_ip", "client.ip"),
                ("client_port", "client.port"),
                ("server_ip", "server.ip"),
                ("server_port", "server.port"),
                ("to_server_packets", "to_server.packets"),
                ("to_client_bytes", "to_client.bytes"),
                ("conn_state", "conn_state"),
                ("detected", "detected"),
                ("community_id", "community_id"),
            ] {
                same(row, column, r, path);
            }
        }
    }
}

#[test]
fn table_without_csv_is_refused() {
    let f = fixture("generated/eth.pcap");
    for args in [
        &["--table", "ports"][..],
        &["--format", "csv", "--flows", "--table", "services"],
    ] {
        let o = portflow().arg("read").args(args).arg(&f).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("--table"), "{}", stderr(&o));
    }
}
