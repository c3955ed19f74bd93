//! portflow: which doors are open, who walks through them, how much, how fast.
pub mod decode;
pub mod detect;
pub mod hint;
pub mod inspect;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod services;
pub mod source;
pub mod stats;
