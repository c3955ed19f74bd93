//! portflow: which doors are open, who walks through them, how much, how fast.
//!
//! The library reads packets ([`source`]), decodes them ([`decode`]), runs
//! them through reader and worker threads ([`pipeline`]) into per-port and
//! per-flow statistics ([`stats`]), looks at the first bytes of each flow
//! ([`inspect`]), judges what it saw ([`detect`]) and builds the report
//! ([`report`]). `services` names ports; `output` writes files atomically.
//! The `portflow` binary's command line and commands are not part of it.
pub mod decode;
pub mod detect;
mod hint;
pub mod inspect;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod services;
pub mod source;
pub mod stats;
