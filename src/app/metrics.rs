//! `capture --metrics ADDR`: a small HTTP server (tiny_http) that answers
//! `GET /metrics` with the capture's metrics (`report::metrics`). The
//! listening socket is bound before privileges drop (so a port below 1024
//! works); the server thread starts after. A scrape takes the metrics' lock
//! only to encode them, and the capture threads never take it: the view's
//! thread updates the metrics once per interval.
use super::AppError;
use portflow::report::metrics::{Metrics, CONTENT_TYPE, TEXT_CONTENT_TYPE};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex};

/// Where `--metrics` listens: `PORT` and `:PORT` on 127.0.0.1, otherwise
/// the address given (`HOST:PORT`, `[V6]:PORT`).
pub fn address(spec: &str) -> Result<SocketAddr, AppError> {
    let bad = |why: String| AppError::Usage(format!("--metrics {spec}: {why}"));
    let port = spec.strip_prefix(':').unwrap_or(spec);
    if let Ok(port) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = spec.parse::<SocketAddr>() {
        return Ok(a);
    }
    spec.to_socket_addrs()
        .map_err(|e| {
            bad(format!(
                "not an address to listen on ({e}); give PORT, HOST:PORT or [V6]:PORT"
            ))
        })?
        .next()
        .ok_or_else(|| bad("the name has no address".into()))
}

/// Binds the metrics socket (before privileges drop).
pub fn bind(spec: &str) -> Result<TcpListener, AppError> {
    let addr = address(spec)?;
    TcpListener::bind(addr)
        .map_err(|e| AppError::Usage(format!("--metrics {spec}: cannot listen on {addr}: {e}")))
}

/// Serves `metrics` on `listener` from a thread of its own, until the
/// process ends.
pub fn serve(listener: TcpListener, metrics: Arc<Mutex<Metrics>>) -> Result<(), AppError> {
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| AppError::Usage(format!("cannot serve the metrics: {e}")))?;
    let header = |t: &str| tiny_http::Header::from_bytes("Content-Type", t).expect("a header");
    let (open_metrics, text) = (header(CONTENT_TYPE), header(TEXT_CONTENT_TYPE));
    std::thread::Builder::new()
        .name("portflow-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or("");
                let get = matches!(
                    request.method(),
                    tiny_http::Method::Get | tiny_http::Method::Head
                );
                let response = match (get, path) {
                    (true, "/metrics") => {
                        // OpenMetrics when the client asks for it (Prometheus
                        // does), else Prometheus's text format.
                        let wants_open_metrics = request.headers().iter().any(|h| {
                            h.field.equiv("Accept")
                                && h.value.as_str().contains("application/openmetrics-text")
                        });
                        let m = metrics
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        if wants_open_metrics {
                            tiny_http::Response::from_string(m.encode())
                                .with_header(open_metrics.clone())
                        } else {
                            tiny_http::Response::from_string(m.encode_text())
                                .with_header(text.clone())
                        }
                    }
                    (true, "/") => {
                        tiny_http::Response::from_string("portflow: metrics at /metrics\n")
                    }
                    (false, _) => {
                        tiny_http::Response::from_string("GET /metrics\n").with_status_code(405)
                    }
                    _ => tiny_http::Response::from_string("not found: GET /metrics\n")
                        .with_status_code(404),
                };
                let _ = request.respond(response);
            }
        })
        .map_err(|e| AppError::Usage(format!("cannot start the metrics thread: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_listens_on_loopback_and_a_named_address_there() {
        assert_eq!(address("9717").unwrap(), "127.0.0.1:9717".parse().unwrap());
        assert_eq!(address(":9717").unwrap(), "127.0.0.1:9717".parse().unwrap());
        assert_eq!(
            address("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(
            address("[::1]:9717").unwrap(),
            "[::1]:9717".parse().unwrap()
        );
        assert!(address("no such host.invalid:1").is_err());
        assert!(address("70000").is_err());
    }
}
