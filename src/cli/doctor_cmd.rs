//! `edgetune doctor`: what the config needs, checked on the device (see
//! [`crate::doctor`]). One line per check; exit status 1 on a problem.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::device::config::DeviceConfig;
use crate::doctor::{Check, Env, has_problem, run_checks};

/// The service's config, used when --config is not given and it exists.
pub const SERVICE_CONFIG: &str = "/etc/edgetune/config.toml";

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Config to check [default: /etc/edgetune/config.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print {"ok": bool, "checks": [{name, status, message, fix}]} instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Folder whose free space and writability are checked
    /// [default: /var/lib/edgetune when it exists, else the head's folder].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Less free space than this on the state folder is a problem (5× this: a warning).
    #[arg(long, default_value_t = 200, value_name = "MB")]
    pub min_free_mb: u64,
    /// Only check that the camera program exists; do not run it (or the cmd: command).
    #[arg(long)]
    pub no_camera_test: bool,
    /// Where device files are looked up (tests).
    #[arg(long, default_value = "/dev", value_name = "DIR", hide = true)]
    pub dev_root: PathBuf,
    /// Where sysfs is looked up (tests).
    #[arg(long, default_value = "/sys", value_name = "DIR", hide = true)]
    pub sys_root: PathBuf,
}

pub fn doctor_cmd(a: DoctorArgs) -> Result<ExitCode> {
    let config = a.config.clone().or_else(|| {
        let p = PathBuf::from(SERVICE_CONFIG);
        p.exists().then_some(p)
    });
    let mut env = Env::system();
    env.dev = a.dev_root.clone();
    env.sys = a.sys_root.clone();
    env.camera_test = !a.no_camera_test;
    env.state_dir = a.state_dir.clone();
    env.min_free_mb = a.min_free_mb;
    let checks = match &config {
        Some(p) => match DeviceConfig::load(p) {
            Ok(cfg) => run_checks(&cfg, Some(p), &env),
            // a config that does not load is the one thing to fix first
            Err(e) => vec![Check::problem(
                "config",
                format!("{e:#}"),
                "correct the file (unknown keys are errors)",
            )],
        },
        None => run_checks(&DeviceConfig::default(), None, &env),
    };
    let bad = has_problem(&checks);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "ok": !bad, "checks": checks }))?
        );
    } else {
        for c in &checks {
            println!("{}", c.line());
        }
        let n = checks
            .iter()
            .filter(|c| c.status == crate::doctor::Status::Problem)
            .count();
        if bad {
            println!(
                "{n} problem{}: edgetune run will not work until they are fixed",
                if n == 1 { "" } else { "s" }
            );
        } else {
            println!("all checks passed");
        }
    }
    Ok(if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
