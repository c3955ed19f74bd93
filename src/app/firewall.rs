//! `portflow firewall`: the rules that enforce a policy, written whole.
use super::{AppError, Output};
use crate::cli::{FirewallArgs, FirewallTarget};
use portflow::detect::policy::Policy;
use portflow::report::firewall::{ruleset, Request, Target};

/// `portflow firewall`.
pub fn run(args: FirewallArgs) -> Result<u8, AppError> {
    let policy = Policy::load(&args.policy)?;
    let target = match args.target {
        FirewallTarget::Nftables => Target::Nftables,
        FirewallTarget::Iptables => Target::Iptables,
        FirewallTarget::Ip6tables => Target::Ip6tables,
    };
    let host = args.host.map(portflow::decode::from_ip);
    let req = Request {
        target,
        host,
        log: args.log,
        allow_lockout: args.allow_lockout,
    };
    let source = args.policy.display().to_string();
    let rules =
        ruleset(&policy, &source, &req).map_err(|e| AppError::Usage(format!("{source}: {e}")))?;
    for w in &rules.warnings {
        eprintln!("portflow: warning: {w}");
    }
    let out = Output::open(args.output.as_deref())?;
    out.write_and_commit(|o| Ok(o.writer().write_all(rules.text.as_bytes())?))?;
    Ok(0)
}
