//! Every user-visible string of the console, in English and Simplified Chinese.
//!
//! One struct, two values: a string missing in one language is a compile error. Strings with
//! `{}` take arguments through [`fill`].

use crate::config::Language;

macro_rules! strings {
    ($($field:ident),* $(,)?) => {
        pub struct Tr {
            $(pub $field: &'static str,)*
        }

        impl Tr {
            /// Every string with its field name (for completeness tests).
            pub fn all(&self) -> Vec<(&'static str, &'static str)> {
                vec![$((stringify!($field), self.$field)),*]
            }
        }
    };
}

strings! {
    app_title,
    // navigation
    nav_overview,
    nav_log,
    nav_settings,
    // status bar
    sandbox,
    broker,
    state_starting,
    state_running,
    state_failed,
    state_off,
    conn_connecting,
    conn_connected,
    conn_disconnected,
    conn_idle,
    msgs_per_sec,
    dropped_n,
    backend_busy,
    // banner
    config_problem,
    dismiss,
    // overview
    overview_intro,
    sandbox_waiting,
    sandbox_failed,
    sandbox_disabled,
    local_broker,
    dev_ca,
    devices_online,
    messages_total,
    message_rate,
    rate_axis,
    last_messages,
    no_messages_yet,
    col_time,
    col_topic,
    col_payload,
    device_online,
    device_offline,
    device_unknown,
    last_seen_secs,
    temperature,
    humidity,
    rssi,
    free_heap,
    uptime,
    led,
    led_on,
    led_off,
    led_toggle,
    reboot,
    last_answer,
    // log
    log_level_filter,
    log_search,
    log_follow,
    log_file_in,
    log_empty,
    // settings
    language,
    language_follow_os,
    theme,
    theme_system,
    theme_light,
    theme_dark,
    log_level,
    data_folder,
    config_folder,
    data_folder_custom,
    apply_next_start,
    use_default,
    check_folder,
    checking,
    folder_report,
    folder_not_writable,
    saved,
    save_failed,
}

pub static EN: Tr = Tr {
    app_title: "mpbridge",
    nav_overview: "Overview",
    nav_log: "Log",
    nav_settings: "Settings",
    sandbox: "Sandbox",
    broker: "Broker",
    state_starting: "starting",
    state_running: "running",
    state_failed: "failed",
    state_off: "off",
    conn_connecting: "connecting",
    conn_connected: "connected",
    conn_disconnected: "disconnected",
    conn_idle: "not connected",
    msgs_per_sec: "msg/s",
    dropped_n: "{} dropped",
    backend_busy: "Backend busy, try again",
    config_problem: "A configuration file could not be used; the console started with defaults. {}",
    dismiss: "Dismiss",
    overview_intro: "The embedded sandbox: a local MQTT broker and a simulated ESP8266, live.",
    sandbox_waiting: "Starting the sandbox…",
    sandbox_failed: "The sandbox could not start: {}",
    sandbox_disabled: "This build has no embedded broker (feature `embedded-broker` off).",
    local_broker: "Local broker",
    dev_ca: "Dev CA",
    devices_online: "Devices online",
    messages_total: "Messages",
    message_rate: "Message rate",
    rate_axis: "messages per second",
    last_messages: "Last messages",
    no_messages_yet: "No messages yet.",
    col_time: "Time",
    col_topic: "Topic",
    col_payload: "Payload",
    device_online: "online",
    device_offline: "offline",
    device_unknown: "unknown",
    last_seen_secs: "last seen {} s ago",
    temperature: "Temperature",
    humidity: "Humidity",
    rssi: "RSSI",
    free_heap: "Free heap",
    uptime: "Uptime",
    led: "LED",
    led_on: "LED on",
    led_off: "LED off",
    led_toggle: "Toggle LED",
    reboot: "Reboot",
    last_answer: "Last answer",
    log_level_filter: "Show",
    log_search: "Search",
    log_follow: "Follow",
    log_file_in: "Log files: {}",
    log_empty: "Nothing logged at this level yet.",
    language: "Language",
    language_follow_os: "Follow the system",
    theme: "Theme",
    theme_system: "System",
    theme_light: "Light",
    theme_dark: "Dark",
    log_level: "Log level",
    data_folder: "Data folder",
    config_folder: "Configuration folder",
    data_folder_custom: "Use another data folder",
    apply_next_start: "Takes effect at the next start.",
    use_default: "Use default",
    check_folder: "Check folder",
    checking: "Checking…",
    folder_report: "{} files, {} — writable",
    folder_not_writable: "Not writable: {}",
    saved: "Saved to {}",
    save_failed: "Could not save settings: {}",
};

pub static ZH: Tr = Tr {
    app_title: "mpbridge",
    nav_overview: "概览",
    nav_log: "日志",
    nav_settings: "设置",
    sandbox: "沙盒",
    broker: "代理",
    state_starting: "启动中",
    state_running: "运行中",
    state_failed: "失败",
    state_off: "关闭",
    conn_connecting: "连接中",
    conn_connected: "已连接",
    conn_disconnected: "已断开",
    conn_idle: "未连接",
    msgs_per_sec: "条/秒",
    dropped_n: "已丢弃 {} 条",
    backend_busy: "后台繁忙，请稍后重试",
    config_problem: "有一个配置文件无法使用，控制台已使用默认设置启动。{}",
    dismiss: "关闭",
    overview_intro: "内置沙盒：本地 MQTT 代理和一台模拟的 ESP8266，实时运行。",
    sandbox_waiting: "正在启动沙盒……",
    sandbox_failed: "沙盒无法启动：{}",
    sandbox_disabled: "此版本不含内置代理（未启用 `embedded-broker` 功能）。",
    local_broker: "本地代理",
    dev_ca: "开发 CA",
    devices_online: "在线设备",
    messages_total: "消息数",
    message_rate: "消息速率",
    rate_axis: "每秒消息数",
    last_messages: "最新消息",
    no_messages_yet: "还没有消息。",
    col_time: "时间",
    col_topic: "主题",
    col_payload: "内容",
    device_online: "在线",
    device_offline: "离线",
    device_unknown: "未知",
    last_seen_secs: "{} 秒前活动",
    temperature: "温度",
    humidity: "湿度",
    rssi: "信号强度",
    free_heap: "空闲内存",
    uptime: "运行时间",
    led: "指示灯",
    led_on: "开灯",
    led_off: "关灯",
    led_toggle: "切换指示灯",
    reboot: "重启",
    last_answer: "最近应答",
    log_level_filter: "显示",
    log_search: "搜索",
    log_follow: "跟随最新",
    log_file_in: "日志文件：{}",
    log_empty: "此级别下还没有日志。",
    language: "语言",
    language_follow_os: "跟随系统",
    theme: "主题",
    theme_system: "跟随系统",
    theme_light: "浅色",
    theme_dark: "深色",
    log_level: "日志级别",
    data_folder: "数据文件夹",
    config_folder: "配置文件夹",
    data_folder_custom: "使用其他数据文件夹",
    apply_next_start: "下次启动时生效。",
    use_default: "恢复默认",
    check_folder: "检查文件夹",
    checking: "检查中……",
    folder_report: "{} 个文件，{}，可写",
    folder_not_writable: "不可写：{}",
    saved: "已保存到 {}",
    save_failed: "无法保存设置：{}",
};

pub fn tr(lang: Language) -> &'static Tr {
    match lang {
        Language::En => &EN,
        Language::ZhCn => &ZH,
    }
}

/// Replaces each `{}` in `template` with the next argument.
pub fn fill(template: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut parts = template.split("{}");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        if let Some(a) = args.get(i) {
            out.push_str(&a.to_string());
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_in_order() {
        assert_eq!(fill("{} files, {}", &[&3, &"1 MB"]), "3 files, 1 MB");
        assert_eq!(fill("none", &[]), "none");
    }

    #[test]
    fn placeholders_match_between_languages() {
        for ((name, en), (_, zh)) in EN.all().into_iter().zip(ZH.all()) {
            assert_eq!(
                en.matches("{}").count(),
                zh.matches("{}").count(),
                "{name}: {en} / {zh}"
            );
            assert!(
                !en.trim().is_empty() && !zh.trim().is_empty(),
                "{name} is empty"
            );
        }
    }

    #[test]
    fn every_string_is_covered_by_the_bundled_fonts() {
        for (name, s) in ZH.all().into_iter().chain(EN.all()) {
            for c in s.chars().filter(|c| !c.is_ascii()) {
                assert!(
                    crate::ui::fonts::bundled_covers(c),
                    "bundled fonts lack {c:?} (in {name}: {s:?})"
                );
            }
        }
    }
}
