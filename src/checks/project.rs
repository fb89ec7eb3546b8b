//! A Mini Program project read as text: the bundled mqtt.js and its version class, the connect
//! URLs, how many clients are made, and the keepalive they use (MP-PROJECT-*).

use std::path::{Path, PathBuf};

use super::{Check, CheckStatus};
use crate::i18n::l;
use crate::verdict::L10n;

const MAX_FILES: usize = 20_000;
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

fn check(
    id: &'static str,
    status: CheckStatus,
    detail: L10n,
    remedy: L10n,
    source: Option<String>,
) -> Check {
    Check::new(id, status, detail, remedy).at(source)
}

/// Files worth reading: JavaScript/TypeScript and package.json, skipping VCS folders.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if name.starts_with('.') {
                continue;
            }
            walk(&p, out);
        } else if ft.is_file()
            && (name.ends_with(".js") || name.ends_with(".ts") || name == "package.json")
            && e.metadata()
                .map(|m| m.len() <= MAX_FILE_BYTES)
                .unwrap_or(false)
        {
            out.push(p);
        }
    }
}

/// The version class of a bundle, from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttJs {
    pub file: String,
    /// Exact version when the bundle or its package.json says it.
    pub version: Option<(u32, u32, u32)>,
    /// `wx.connectSocket({... protocols: [..]})`: an array (≥ 4.1.0) or a string (3.0–4.0.x).
    pub protocols_array: Option<bool>,
    /// The 4.2.2–4.3.7 environment test that registers tcp instead of wx in WeChat.
    pub env_flipped: bool,
}

fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(['.', '-', '+']).map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn find_after<'a>(text: &'a str, pat: &str) -> Option<&'a str> {
    text.find(pat).map(|i| &text[i + pat.len()..])
}

/// Looks at a JavaScript file that may be an mqtt.js bundle.
pub fn fingerprint(file: &str, text: &str) -> Option<MqttJs> {
    let is_bundle = text.contains("connectSocket") && text.contains("MQIsdp");
    if !is_bundle {
        return None;
    }
    // 5.x bundles carry their package version ({version:"5.16.0"}) next to their
    // BufferedDuplex; 4.x bundles carry only their dependencies' versions.
    let version = if text.contains("BufferedDuplex") {
        text.match_indices("{version:\"")
            .filter_map(|(i, p)| text[i + p.len()..].split('"').next())
            .filter_map(parse_version)
            .find(|v| v.0 >= 5)
    } else {
        None
    };
    let protocols_array = find_after(text, "wx.connectSocket({url:")
        .or_else(|| find_after(text, "wx.connectSocket({\n"))
        .and_then(|rest| find_after(rest, "protocols:"))
        .map(|rest| rest.trim_start().starts_with('['));
    let env_flipped = text.contains("\"function\"!=typeof __webpack_require__?(")
        || text.contains("typeof __webpack_require__ !== 'function' ?");
    Some(MqttJs {
        file: file.to_owned(),
        version,
        protocols_array,
        env_flipped,
    })
}

fn version_str(v: (u32, u32, u32)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

fn mqttjs_check(m: &MqttJs, uses: &Uses) -> Check {
    let recommend = l(
        "Use mqtt.js 4.2.1's dist/mqtt.min.js for native Mini Programs (4.1.0 for uni-app), or ≥ 5.9 with the README's polyfills plus forceNativeWebSocket: true and timerVariant: 'native'.",
        "原生小程序使用 mqtt.js 4.2.1 的 dist/mqtt.min.js（uni-app 用 4.1.0），或 ≥ 5.9 版本并按 README 加 polyfill，同时设置 forceNativeWebSocket: true 与 timerVariant: 'native'。",
    );
    let src = Some(m.file.clone());
    let known = m.version.map(version_str);
    match m.version {
        Some(v) if v.0 >= 5 => {
            let force = uses.force_native;
            let abort = uses.abort_polyfill;
            let ok = force && abort && v >= (5, 9, 0);
            let missing: Vec<&str> = [
                (!force, "forceNativeWebSocket: true"),
                (!abort, "abortcontroller-polyfill"),
                (v < (5, 9, 0), "version ≥ 5.9"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, s)| *s)
            .collect();
            if ok {
                check(
                    "MP-PROJECT-MQTTJS",
                    CheckStatus::Pass,
                    l(
                        format!(
                            "mqtt.js {}, with forceNativeWebSocket and the AbortController polyfill.",
                            version_str(v)
                        ),
                        format!(
                            "mqtt.js {}，已设置 forceNativeWebSocket 并引入 AbortController polyfill。",
                            version_str(v)
                        ),
                    ),
                    L10n::default(),
                    src,
                )
            } else {
                check(
                    "MP-PROJECT-MQTTJS",
                    CheckStatus::Fail,
                    l(
                        format!(
                            "mqtt.js {} in WeChat needs: {} (\"WS is not a constructor\", \"AbortController of undefined\" otherwise).",
                            version_str(v),
                            missing.join(", ")
                        ),
                        format!(
                            "mqtt.js {} 在微信中还需要：{}（否则报“WS is not a constructor”“AbortController of undefined”）。",
                            version_str(v),
                            missing.join("、")
                        ),
                    ),
                    recommend,
                    src,
                )
            }
        }
        Some(v) if ((4, 2, 2)..=(4, 3, 7)).contains(&v) => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Fail,
            l(
                format!(
                    "mqtt.js {}: 4.2.2–4.3.7 mistake WeChat for Node and register no wx transport (\"WS is not a constructor\").",
                    version_str(v)
                ),
                format!(
                    "mqtt.js {}：4.2.2–4.3.7 会把微信误判为 Node，不注册 wx 传输层（报“WS is not a constructor”）。",
                    version_str(v)
                ),
            ),
            recommend,
            src,
        ),
        Some(v) if ((3, 0, 0)..(4, 1, 0)).contains(&v) => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Fail,
            l(
                format!(
                    "mqtt.js {}: 3.0.0–4.0.x pass protocols as a string; Android WeChat then fails, iOS works.",
                    version_str(v)
                ),
                format!(
                    "mqtt.js {}：3.0.0–4.0.x 以字符串传 protocols，安卓微信会连接失败，iOS 正常。",
                    version_str(v)
                ),
            ),
            recommend,
            src,
        ),
        _ if m.env_flipped => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Fail,
            l(
                format!(
                    "{}: an mqtt.js 4.2.2–4.3.7 build (its environment test registers tcp, not wx, inside WeChat: \"WS is not a constructor\").",
                    known.as_deref().unwrap_or("the bundle")
                ),
                format!(
                    "{}：mqtt.js 4.2.2–4.3.7 构建（其环境判断在微信中注册 tcp 而非 wx：报“WS is not a constructor”）。",
                    known.as_deref().unwrap_or("该文件")
                ),
            ),
            recommend,
            src,
        ),
        _ if m.protocols_array == Some(false) => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Fail,
            l(
                "An mqtt.js 3.0.0–4.0.x build: wx.connectSocket gets protocols as a string, which Android WeChat rejects.",
                "mqtt.js 3.0.0–4.0.x 构建：wx.connectSocket 的 protocols 是字符串，安卓微信会拒绝。",
            ),
            recommend,
            src,
        ),
        Some(v) if ((4, 1, 0)..=(4, 2, 1)).contains(&v) => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Pass,
            l(
                format!("mqtt.js {}: known to work in WeChat.", version_str(v)),
                format!("mqtt.js {}：已知可在微信中使用。", version_str(v)),
            ),
            L10n::default(),
            src,
        ),
        Some(v) => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Warn,
            l(
                format!(
                    "mqtt.js {} is not among the versions known to work in WeChat (4.2.1, 4.2.0, 4.1.0, 2.18.9).",
                    version_str(v)
                ),
                format!(
                    "mqtt.js {} 不在已知可用于微信的版本之列（4.2.1、4.2.0、4.1.0、2.18.9）。",
                    version_str(v)
                ),
            ),
            recommend,
            src,
        ),
        None if m.protocols_array == Some(true) => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Pass,
            l(
                "An mqtt.js 4.1.0–4.2.1 build (protocols passed as an array, wx transport registered for WeChat).",
                "mqtt.js 4.1.0–4.2.1 构建（protocols 以数组传递，为微信注册了 wx 传输层）。",
            ),
            L10n::default(),
            src,
        ),
        None => check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Warn,
            l(
                "An mqtt.js bundle whose version could not be told.",
                "发现 mqtt.js 文件，但无法判断版本。",
            ),
            recommend,
            src,
        ),
    }
}

/// What the project's own code (not its dependencies) uses.
#[derive(Debug, Default)]
struct Uses {
    force_native: bool,
    abort_polyfill: bool,
}

/// A `mqtt.connect('…', {…})` call found in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectCall {
    source: String,
    url: Option<String>,
    keepalive: Option<u64>,
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

fn connect_calls(file: &str, text: &str) -> Vec<ConnectCall> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("mqtt.connect(") {
        let at = from + i;
        let args = &text[at + "mqtt.connect(".len()..];
        let window: String = args.chars().take(600).collect();
        let url = window.trim_start().chars().next().and_then(|q| {
            if q == '\'' || q == '"' || q == '`' {
                window.trim_start()[1..].split(q).next().map(str::to_owned)
            } else {
                None
            }
        });
        let keepalive = window.find("keepalive").and_then(|k| {
            let rest = window[k + "keepalive".len()..]
                .trim_start()
                .strip_prefix(':')?;
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        });
        out.push(ConnectCall {
            source: format!("{file}:{}", line_of(text, at)),
            url,
            keepalive,
        });
        from = at + 1;
    }
    out
}

fn url_check(c: &ConnectCall) -> Check {
    let src = Some(c.source.clone());
    let Some(url) = &c.url else {
        return check(
            "MP-PROJECT-URL",
            CheckStatus::Warn,
            l(
                "The URL is computed at run time; it could not be checked.",
                "连接地址在运行时拼接，无法检查。",
            ),
            l(
                "Make sure it becomes wxs://your.domain/mqtt.",
                "请确保它最终为 wxs://你的域名/mqtt。",
            ),
            src,
        );
    };
    if url.contains("${") {
        return check(
            "MP-PROJECT-URL",
            CheckStatus::Warn,
            l(
                format!("{url}: built from a template; checked only by its scheme."),
                format!("{url}：由模板拼接，只检查协议。"),
            ),
            L10n::default(),
            src,
        );
    }
    match super::url::parse(url) {
        Err(e) => check(
            "MP-PROJECT-URL",
            CheckStatus::Fail,
            l(format!("{url}: {}", e.en), format!("{url}：{}", e.zh)),
            l(
                "Write wxs://your.domain/mqtt.",
                "请写成 wxs://你的域名/mqtt。",
            ),
            src,
        ),
        Ok(t) if t.scheme == "wss" || t.scheme == "ws" => check(
            "MP-PROJECT-URL",
            CheckStatus::Fail,
            l(
                format!(
                    "{url}: with {}:// mqtt.js picks its browser/Node WebSocket, not WeChat's (\"WS is not a constructor\").",
                    t.scheme
                ),
                format!(
                    "{url}：使用 {}:// 时 mqtt.js 会选用浏览器/Node 的 WebSocket，而不是微信的（报“WS is not a constructor”）。",
                    t.scheme
                ),
            ),
            l(
                format!("Write wxs://{}{}.", t.authority(), t.path),
                format!("请写成 wxs://{}{}。", t.authority(), t.path),
            ),
            src,
        ),
        Ok(t) if t.scheme == "wx" => check(
            "MP-PROJECT-URL",
            CheckStatus::Fail,
            l(
                format!("{url}: wx:// is plain WebSocket, refused on phones."),
                format!("{url}：wx:// 是明文 WebSocket，真机会拒绝。"),
            ),
            l(
                format!("Write wxs://{}{}.", t.authority(), t.path),
                format!("请写成 wxs://{}{}。", t.authority(), t.path),
            ),
            src,
        ),
        Ok(t) if t.path == "/" => check(
            "MP-PROJECT-URL",
            CheckStatus::Warn,
            l(
                format!(
                    "{url}: no path, so mqtt.js's wx transport asks for \"/\"; EMQX and the mpbridge relay serve /mqtt."
                ),
                format!(
                    "{url}：未写路径，mqtt.js 的 wx 传输层会请求“/”；EMQX 和 mpbridge 中继使用 /mqtt。"
                ),
            ),
            l(
                format!("Write wxs://{}/mqtt.", t.authority()),
                format!("请写成 wxs://{}/mqtt。", t.authority()),
            ),
            src,
        ),
        Ok(t) if t.port != 443 => check(
            "MP-PROJECT-URL",
            CheckStatus::Warn,
            l(
                format!("{url}: port {} (older Android WeChat needed 443).", t.port),
                format!("{url}：端口 {}（旧版安卓微信只支持 443）。", t.port),
            ),
            l(
                "Serve wss on 443 and leave the port out.",
                "在 443 端口提供 wss，URL 中不写端口。",
            ),
            src,
        ),
        Ok(_) => check(
            "MP-PROJECT-URL",
            CheckStatus::Pass,
            L10n::same(url.clone()),
            L10n::default(),
            src,
        ),
    }
}

/// Scans a Mini Program folder.
pub fn scan(dir: &Path, relay_idle_secs: Option<u64>) -> Vec<Check> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return vec![check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Fail,
            l(
                format!("{} is not a folder.", dir.display()),
                format!("{} 不是文件夹。", dir.display()),
            ),
            l(
                "Point --project at the Mini Program's root (where app.json is).",
                "--project 请指向小程序根目录（app.json 所在处）。",
            ),
            None,
        )];
    }
    walk(dir, &mut files);
    let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let mut bundles = Vec::new();
    let mut calls = Vec::new();
    let mut uses = Uses::default();
    let mut package_versions: Vec<(String, (u32, u32, u32))> = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let name = rel(f);
        if f.file_name().is_some_and(|n| n == "package.json") {
            // miniprogram_npm/mqtt/package.json or node_modules/mqtt/package.json.
            if f.parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "mqtt")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(ver) = v["version"].as_str().and_then(parse_version)
            {
                package_versions.push((name, ver));
            }
            continue;
        }
        if let Some(m) = fingerprint(&name, &text) {
            bundles.push(m);
            continue;
        }
        let in_deps = name.contains("node_modules") || name.contains("miniprogram_npm");
        if !in_deps {
            calls.extend(connect_calls(&name, &text));
            uses.force_native |= text.contains("forceNativeWebSocket");
            uses.abort_polyfill |=
                text.contains("abortcontroller-polyfill") || text.contains("AbortController");
        }
    }
    let mut out = Vec::new();
    // A bundle's package.json next to it gives the exact version.
    for b in &mut bundles {
        if b.version.is_none()
            && let Some((_, v)) = package_versions.iter().find(|(p, _)| {
                Path::new(p)
                    .parent()
                    .is_some_and(|d| b.file.starts_with(&d.display().to_string()))
            })
        {
            b.version = Some(*v);
        }
    }
    if bundles.is_empty()
        && let Some((p, v)) = package_versions.first()
    {
        bundles.push(MqttJs {
            file: p.clone(),
            version: Some(*v),
            protocols_array: None,
            env_flipped: false,
        });
    }
    if bundles.is_empty() {
        out.push(check(
            "MP-PROJECT-MQTTJS",
            CheckStatus::Warn,
            l(
                format!("No mqtt.js found in {} ({} files read).", dir.display(), files.len()),
                format!("在 {} 中没有找到 mqtt.js（读取了 {} 个文件）。", dir.display(), files.len()),
            ),
            l(
                "Copy mqtt.js 4.2.1's dist/mqtt.min.js into the project (e.g. utils/) and require it.",
                "把 mqtt.js 4.2.1 的 dist/mqtt.min.js 复制到项目中（如 utils/）并 require 它。",
            ),
            None,
        ));
    }
    for b in &bundles {
        out.push(mqttjs_check(b, &uses));
    }
    for c in &calls {
        out.push(url_check(c));
    }
    if calls.len() > 1 {
        let list: Vec<&str> = calls.iter().map(|c| c.source.as_str()).collect();
        out.push(check(
            "MP-PROJECT-CLIENTS",
            CheckStatus::Warn,
            l(
                format!("mqtt.connect is called in {} places ({}): WeChat allows 5 sockets, and the wx transport keeps one socket per module, so clients interfere.", calls.len(), list.join(", ")),
                format!("mqtt.connect 在 {} 处被调用（{}）：微信最多 5 个 socket，且 wx 传输层在模块内只保留一个 socket，多个客户端会互相干扰。", calls.len(), list.join("，")),
            ),
            l(
                "Create one client in app.js (globalData) and share it; end() it in onHide / onUnload.",
                "在 app.js 中创建一个客户端（globalData）并共享；在 onHide / onUnload 中调用 end()。",
            ),
            calls.first().map(|c| c.source.clone()),
        ));
    } else if calls.len() == 1 {
        out.push(check(
            "MP-PROJECT-CLIENTS",
            CheckStatus::Pass,
            l("One mqtt.connect call.", "只有一处 mqtt.connect。"),
            L10n::default(),
            Some(calls[0].source.clone()),
        ));
    }
    for c in &calls {
        out.push(keepalive_check(c, relay_idle_secs));
    }
    out
}

/// MP-PROJECT-KEEPALIVE for one `mqtt.connect` call: its keepalive against the relay's idle
/// timeout, or a common proxy's.
fn keepalive_check(c: &ConnectCall, relay_idle_secs: Option<u64>) -> Check {
    let k = c.keepalive.unwrap_or(60);
    let stated = if c.keepalive.is_some() {
        format!("keepalive {k}")
    } else {
        "keepalive not set (mqtt.js default 60)".to_owned()
    };
    let stated_zh = if c.keepalive.is_some() {
        format!("keepalive {k}")
    } else {
        "未设置 keepalive（mqtt.js 默认 60）".to_owned()
    };
    let relay_cut = relay_idle_secs.is_some_and(|idle| k * 3 / 2 > idle);
    let (status, en, zh) = if relay_cut {
        let idle = relay_idle_secs.unwrap_or(0);
        (
            CheckStatus::Fail,
            format!(
                "{stated}: 1.5 × keepalive exceeds the relay's idle timeout ({idle} s), so idle clients are cut."
            ),
            format!("{stated_zh}：1.5 倍心跳超过中继的空闲超时（{idle} 秒），空闲客户端会被断开。"),
        )
    } else if k >= 60 {
        (
            CheckStatus::Warn,
            format!(
                "{stated}: a proxy with a 60 s idle timeout (nginx's default proxy_read_timeout) cuts the connection about every minute."
            ),
            format!(
                "{stated_zh}：空闲超时为 60 秒的代理（nginx 默认 proxy_read_timeout）大约每分钟断开一次连接。"
            ),
        )
    } else if k == 0 {
        (
            CheckStatus::Warn,
            "keepalive 0: no pings, so any idle timeout cuts the connection.".to_owned(),
            "keepalive 0：不发心跳，任何空闲超时都会断开连接。".to_owned(),
        )
    } else {
        (
            CheckStatus::Pass,
            format!("{stated}."),
            format!("{stated_zh}。"),
        )
    };
    let remedy = if status == CheckStatus::Pass {
        L10n::default()
    } else {
        l(
            "Set keepalive: 30 in mqtt.connect, or raise the proxy idle timeout (nginx proxy_read_timeout 300s).",
            "在 mqtt.connect 中设置 keepalive: 30，或调高代理空闲超时（nginx proxy_read_timeout 300s）。",
        )
    };
    check(
        "MP-PROJECT-KEEPALIVE",
        status,
        l(en, zh),
        remedy,
        Some(c.source.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_calls_are_found_with_line_url_and_keepalive() {
        let text = "const a = 1\nconst c = mqtt.connect('wxs://a.com/mqtt', {\n  keepalive: 45,\n})\nmqtt.connect(url)\n";
        let calls = connect_calls("app.js", text);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].source, "app.js:2");
        assert_eq!(calls[0].url.as_deref(), Some("wxs://a.com/mqtt"));
        assert_eq!(calls[0].keepalive, Some(45));
        assert_eq!(calls[1].url, None);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("4.2.1"), Some((4, 2, 1)));
        assert_eq!(parse_version("5.16.0-beta.1"), Some((5, 16, 0)));
        assert_eq!(parse_version("x"), None);
    }
}
