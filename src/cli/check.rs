//! `mpbridge check URL`: the Mini Program compliance checks headless.
//!
//! Exit codes: 0 nothing fails, 1 a check fails, 2 usage or internal error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::checks::{self, Options};
use crate::config::Secret;
use crate::i18n::Language;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The address the Mini Program connects to: wxs://host/mqtt, wss://…, ws://….
    #[arg(value_name = "URL")]
    url: String,
    /// MQTT user name for MP-MQTT-CONNECT.
    #[arg(long, value_name = "U")]
    username: Option<String>,
    /// Read the MQTT password from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// Lab only: send the user name and password even when the certificate does not verify
    /// for the host (anyone in the middle can read them). Without it they are withheld.
    #[arg(long)]
    send_credentials_anyway: bool,
    /// A private CA (PEM) that may verify the chain for the other checks; MP-CERT-TRUST
    /// still fails ("trusted only by an extra root").
    #[arg(long, value_name = "FILE")]
    extra_root: Vec<PathBuf>,
    /// Run MP-KEEPALIVE: stay idle 75 s with keepalive 60 (catches a proxy's 60 s timeout).
    #[arg(long)]
    keepalive_test: bool,
    /// How long MP-KEEPALIVE stays idle.
    #[arg(long, value_name = "SECS", default_value_t = 75, hide = true)]
    keepalive_secs: u64,
    /// Resolve HOST to ADDR instead of asking DNS (like curl): HOST:ADDR.
    #[arg(long, value_name = "HOST:ADDR")]
    resolve: Vec<String>,
    /// Also scan a Mini Program project folder (mqtt.js version, connect URLs, keepalive).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The appid sent in the WeChat Referer.
    #[arg(long, value_name = "APPID", default_value = "touristappid")]
    appid: String,
    /// Each network step's timeout.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    timeout: f64,
    /// Print JSON.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown.
    #[arg(long)]
    markdown: bool,
}

fn options(a: &CheckArgs) -> Result<Options, String> {
    let password = match &a.password_env {
        Some(var) => Some(Secret::new(std::env::var(var).map_err(|_| {
            format!("--password-env {var}: the environment variable {var} is not set")
        })?)),
        None => None,
    };
    let mut extra_roots = Vec::new();
    for p in &a.extra_root {
        let mut o = crate::certs::Opened::default();
        crate::certs::open::open_path(p, None, &mut o);
        if let Some(e) = o.errors.first() {
            return Err(format!("--extra-root: {e}"));
        }
        if o.certs.is_empty() {
            return Err(format!(
                "--extra-root {}: no certificate in it",
                p.display()
            ));
        }
        extra_roots.extend(o.certs.into_iter().map(|c| c.der));
    }
    let mut resolve = Vec::new();
    for r in &a.resolve {
        let (h, ip) = r
            .split_once(':')
            .ok_or_else(|| format!("--resolve {r}: expected HOST:ADDR"))?;
        let ip = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("--resolve {r}: {ip} is not an IP address"))?;
        resolve.push((h.to_ascii_lowercase(), ip));
    }
    if !a.timeout.is_finite() || a.timeout <= 0.0 {
        return Err("--timeout must be a positive number of seconds".into());
    }
    if a.password_env.is_some() && a.username.is_none() {
        return Err("--password-env needs --username".into());
    }
    Ok(Options {
        username: a.username.clone(),
        password,
        extra_roots,
        extra_roots_origin: crate::verdict::L10n::same("--extra-root"),
        keepalive_test: a.keepalive_test,
        keepalive_idle: Duration::from_secs(a.keepalive_secs.max(1)),
        resolve,
        appid: a.appid.clone(),
        step_timeout: Duration::from_secs_f64(a.timeout.clamp(0.5, 120.0)),
        project: a.project.clone(),
        relay_idle_secs: None,
        send_credentials_anyway: a.send_credentials_anyway,
    })
}

pub fn run(args: CheckArgs, lang: Language, rt: &tokio::runtime::Runtime) -> ExitCode {
    let opts = match options(&args) {
        Ok(o) if o.send_credentials_anyway && o.username.is_some() => {
            eprintln!(
                "WARNING: --send-credentials-anyway: the MQTT user name and password go to this server even if its certificate does not verify; anyone in the middle may read them. Use it only in a lab."
            );
            o
        }
        Ok(o) => o,
        Err(e) => {
            eprintln!("mpbridge: {e}");
            return ExitCode::from(2);
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let ctrl_c = cancel.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    // Text output is printed check by check as the run goes.
    let live = !args.json && !args.markdown;
    if live {
        print!("{}", checks::report::header(&args.url, lang));
    }
    let report = rt.block_on(checks::run(
        &args.url,
        &opts,
        |c| {
            if live {
                use std::io::Write as _;
                print!("{}", checks::report::line(c, lang));
                std::io::stdout().flush().ok();
            }
        },
        cancel,
    ));
    if live {
        print!("{}", checks::report::footer(&report, lang));
    } else if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("mpbridge: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", checks::report::markdown(&report, lang));
    }
    ExitCode::from(report.exit_code())
}
