//! Every user-visible string of the console, each key with its English and its Simplified
//! Chinese on neighbouring lines. A key missing a language is a compile error; placeholders
//! are named (`{path}`) and filled by [`fill`] (see [`crate::i18n`]).

use crate::config::Language;
pub use crate::i18n::fill;

macro_rules! texts {
    ($($field:ident: $en:literal, $zh:literal;)*) => {
        pub struct Tr {
            $(pub $field: &'static str,)*
        }

        pub static EN: Tr = Tr { $($field: $en,)* };
        pub static ZH: Tr = Tr { $($field: $zh,)* };

        impl Tr {
            /// Every string with its field name (for completeness tests).
            pub fn all(&self) -> Vec<(&'static str, &'static str)> {
                vec![$((stringify!($field), self.$field)),*]
            }
        }
    };
}

texts! {
    app_title: "mpbridge",
        "mpbridge";
    // navigation
    nav_overview: "Overview",
        "概览";
    nav_log: "Log",
        "日志";
    nav_settings: "Settings",
        "设置";
    // status bar
    sandbox: "Sandbox",
        "沙盒";
    broker: "Broker",
        "代理";
    state_starting: "starting",
        "启动中";
    state_running: "running",
        "运行中";
    state_failed: "failed",
        "失败";
    state_restarting: "restarting",
        "重启中";
    state_off: "off",
        "关闭";
    conn_connecting: "connecting",
        "连接中";
    conn_connected: "connected",
        "已连接";
    conn_disconnected: "disconnected",
        "已断开";
    conn_idle: "not connected",
        "未连接";
    msgs_per_sec: "msg/s",
        "条/秒";
    dropped_n: "{n} dropped",
        "已丢弃 {n} 条";
    backend_busy: "Backend busy, try again",
        "后台繁忙，请稍后重试";
    // banner
    config_problem: "A configuration file could not be used; the console started with defaults. {problem}",
        "有一个配置文件无法使用，控制台已使用默认设置启动。{problem}";
    dismiss: "Dismiss",
        "关闭";
    // overview
    overview_intro: "The embedded sandbox: a local MQTT broker and a simulated ESP8266, live.",
        "内置沙盒：本地 MQTT 代理和一台模拟的 ESP8266，实时运行。";
    sandbox_waiting: "Starting the sandbox…",
        "正在启动沙盒……";
    sandbox_failed: "The sandbox could not start: {error}",
        "沙盒无法启动：{error}";
    sandbox_disabled: "This build has no embedded broker (feature `embedded-broker` off).",
        "此版本不含内置代理（未启用 `embedded-broker` 功能）。";
    local_broker: "Local broker",
        "本地代理";
    local_broker_ws: "Local broker (WebSocket)",
        "本地代理（WebSocket）";
    broker_store: "Broker store",
        "代理存储";
    broker_store_memory: "in memory (lost when the console stops)",
        "仅内存（控制台停止后丢失）";
    broker_restarts: "Broker restarts",
        "代理重启次数";
    dev_ca: "Dev CA",
        "开发 CA";
    devices_online: "Devices online",
        "在线设备";
    messages_total: "Messages",
        "消息数";
    message_rate: "Message rate",
        "消息速率";
    rate_axis: "messages per second",
        "每秒消息数";
    last_messages: "Last messages",
        "最新消息";
    no_messages_yet: "No messages yet.",
        "还没有消息。";
    col_time: "Time",
        "时间";
    col_topic: "Topic",
        "主题";
    col_payload: "Payload",
        "内容";
    device_online: "online",
        "在线";
    device_offline: "offline",
        "离线";
    device_unknown: "unknown",
        "未知";
    last_seen_secs: "last seen {secs} s ago",
        "{secs} 秒前活动";
    temperature: "Temperature",
        "温度";
    humidity: "Humidity",
        "湿度";
    rssi: "RSSI",
        "信号强度";
    free_heap: "Free heap",
        "空闲内存";
    uptime: "Uptime",
        "运行时间";
    led: "LED",
        "指示灯";
    led_on: "LED on",
        "开灯";
    led_off: "LED off",
        "关灯";
    led_toggle: "Toggle LED",
        "切换指示灯";
    reboot: "Reboot",
        "重启";
    last_answer: "Last answer",
        "最近应答";
    // log
    log_level_filter: "Show",
        "显示";
    log_search: "Search",
        "搜索";
    log_follow: "Follow",
        "跟随最新";
    log_file_in: "Log files: {path}",
        "日志文件：{path}";
    log_empty: "Nothing logged at this level yet.",
        "此级别下还没有日志。";
    // settings
    language: "Language",
        "语言";
    language_follow_os: "Follow the system",
        "跟随系统";
    theme: "Theme",
        "外观";
    theme_system: "System",
        "跟随系统";
    theme_light: "Light",
        "浅色";
    theme_dark: "Dark",
        "深色";
    log_level: "Log level",
        "日志级别";
    data_folder: "Data folder",
        "数据文件夹";
    config_folder: "Configuration folder",
        "配置文件夹";
    data_folder_custom: "Use another data folder",
        "使用其他数据文件夹";
    apply_next_start: "Takes effect at the next start.",
        "下次启动时生效。";
    use_default: "Use default",
        "恢复默认";
    check_folder: "Check folder",
        "检查文件夹";
    checking: "Checking…",
        "检查中……";
    folder_report: "{files} files, {size} — writable",
        "{files} 个文件，{size}，可写";
    folder_not_writable: "Not writable: {error}",
        "不可写：{error}";
    saved: "Saved to {path}",
        "已保存到 {path}";
    save_failed: "Could not save settings: {error}",
        "无法保存设置：{error}";
    // broker
    nav_broker: "Broker",
        "代理";
    broker_intro: "Saved connections: open several at once (the sandbox is one); the Topics and Devices panels show the active one. Passwords are left out of exports.",
        "保存的连接：可同时打开多个（沙盒也是其中之一）；主题和设备面板显示当前选中的连接。导出时不包含密码。";
    broker_disconnect: "Disconnect",
        "断开";
    broker_sandbox: "Back to the sandbox",
        "返回沙盒";
    broker_client_id_used: "connected as {client_id}",
        "客户端 ID：{client_id}";
    broker_new: "New profile",
        "新建配置";
    broker_import_hint: "profiles.json or an MQTTX export",
        "profiles.json 或 MQTTX 导出文件";
    broker_vault_os: "Passwords are kept in {store}; profiles.json holds only a reference.",
        "密码保存在{store}中；profiles.json 只保存引用。";
    broker_vault_file: "Passwords are kept in {store}, readable by you alone: {reason}",
        "密码保存在 {store} 中，仅您本人可读：{reason}";
    broker_vault_asked: "MPBRIDGE_SECRETS=file asks for the file.",
        "MPBRIDGE_SECRETS=file 要求使用文件。";
    broker_vault_unreachable: "no credential store answered (a headless machine has none).",
        "没有可用的凭据存储（无桌面的机器通常没有）。";
    broker_vault_refused: "the credential store refused to keep a password.",
        "凭据存储拒绝保存密码。";
    broker_vault_unsupported: "this system has no credential store mpbridge can use.",
        "此系统没有 mpbridge 可用的凭据存储。";
    vault_secret_service: "the Secret Service (GNOME Keyring, KWallet)",
        " Secret Service（GNOME 密钥环、KWallet）";
    vault_credential_manager: "Windows Credential Manager",
        " Windows 凭据管理器";
    vault_keychain: "the macOS Keychain",
        " macOS 钥匙串";
    passwords_moved: "Passwords moved out of profiles.json: {n}, now in {store}.",
        "已将 {n} 个保存的密码从 profiles.json 移至{store}。";
    passwords_missing: "Enter the password again for: {names} (not found in {store}).",
        "请重新输入以下连接的密码：{names}（{store}中没有）。";
    broker_import: "Import",
        "导入";
    broker_export: "Export",
        "导出";
    broker_pick: "Pick a profile or make a new one.",
        "选择一个配置或新建一个。";
    broker_name: "Name",
        "名称";
    broker_url: "Address",
        "地址";
    broker_client_id: "Client id",
        "客户端 ID";
    broker_random_suffix: "random suffix",
        "随机后缀";
    broker_username: "User name",
        "用户名";
    broker_keepalive: "Keepalive",
        "心跳间隔";
    broker_clean: "clean session",
        "清除会话";
    broker_will_topic: "Last will topic",
        "遗嘱主题";
    broker_will_payload: "Last will payload",
        "遗嘱载荷";
    broker_trust: "Trust",
        "信任";
    broker_trust_system: "this computer",
        "本机证书库";
    broker_trust_public: "public roots",
        "公共根证书";
    broker_trust_file: "CA file",
        "CA 文件";
    broker_ca_file: "CA file",
        "CA 文件";
    broker_client_cert: "Client certificate",
        "客户端证书";
    broker_client_key: "Client key",
        "客户端私钥";
    broker_subscriptions: "Subscriptions",
        "订阅";
    broker_subscribe_qos: "Subscribe with",
        "订阅 QoS";
    broker_insecure: "skip certificate verification",
        "跳过证书验证";
    broker_insecure_warning: "Verification is off: anyone on the path can read and change this connection. Only for a test server you control.",
        "已关闭验证：链路上的任何人都能读取和篡改此连接。仅用于你自己控制的测试服务器。";
    broker_unverified: "not verified",
        "未验证";
    broker_will_retain: "retain the last will",
        "遗嘱设为保留消息";
    broker_sandbox_entry: "Sandbox (built-in)",
        "沙盒（内置）";
    broker_sandbox_about: "The embedded broker on this computer, reached through the console's relay with the local dev certificate, as a Mini Program would reach it. Always here; nothing to configure.",
        "本机上的内置代理，经控制台的中继并使用本地开发证书连接，与小程序的连接方式相同。始终可用，无需配置。";
    broker_sandbox_direct: "Broker (direct)",
        "代理（直连）";
    broker_sandbox_copy: "Copy as a new profile",
        "复制为新配置";
    broker_sandbox_ws: "Broker (WebSocket)",
        "代理（WebSocket）";
    broker_sandbox_v5_about: "MQTT 5 opens a second connection, with message properties and reason strings, beside the console's own MQTT 3.1.1 one (which the Overview and Devices panels follow).",
        "MQTT 5 会在控制台自己的 MQTT 3.1.1 连接（总览和设备面板使用）之外另开一个连接，可查看消息属性和原因字符串。";
    broker_connect: "Connect",
        "连接";
    broker_duplicate: "Duplicate",
        "复制";
    broker_imported: "Imported {n} profile(s) from {path}",
        "已导入 {n} 个配置（来自 {path}）";
    // topics
    topics_dropped_row: "(dropped from the store while paused)",
        "（暂停期间已从存储中丢弃）";
    topics_saved: "Saved:",
        "已保存：";
    topics_save_name: "name",
        "名称";
    topics_save_payload: "Save payload",
        "保存载荷";
    nav_topics: "Topics",
        "主题";
    topics_sub_chip: "{filter} · QoS {qos} · {n} msgs · {rate}/s",
        "{filter} · QoS {qos} · {n} 条 · {rate}/秒";
    topics_pause_sub: "pause",
        "暂停";
    topics_resume_sub: "resume",
        "恢复";
    topics_remove_sub: "unsubscribe",
        "取消订阅";
    topics_filter_hint: "topic filter, e.g. devices/+/telemetry",
        "主题过滤器，如 devices/+/telemetry";
    topics_subscribe: "Subscribe",
        "订阅";
    topics_search: "Search",
        "搜索";
    topics_search_topic: "topic or filter",
        "主题或过滤器";
    topics_search_text: "payload text",
        "载荷文本";
    topics_regex: "regex",
        "正则";
    topics_pause: "Pause view",
        "暂停视图";
    topics_resume: "Resume view",
        "恢复视图";
    topics_counts: "{messages} messages · {topics} topics · {size} · {dropped} dropped",
        "{messages} 条消息 · {topics} 个主题 · {size} · 丢弃 {dropped} 条";
    topics_export_jsonl: "Export JSONL",
        "导出 JSONL";
    topics_export_csv: "Export CSV",
        "导出 CSV";
    topics_empty: "No messages yet.",
        "尚无消息。";
    topics_tree: "Topic tree",
        "主题树";
    topics_tree_filter: "filter topics",
        "筛选主题";
    topics_pick: "Pick a message to see its payload.",
        "选择一条消息以查看载荷。";
    topics_meta: "QoS {qos} · retained {retained} · {size}",
        "QoS {qos} · 保留 {retained} · {size}";
    topics_truncated: "Kept {kept} of {size}: the rest was cut to stay within the store's payload limit.",
        "仅保留了 {kept}（共 {size}）：超出消息存储的载荷上限部分已截断。";
    topics_view_limit: "Showing the first {shown} of {total}; export gets it whole.",
        "只显示前 {shown}（共 {total}）；导出可得到完整内容。";
    topics_shown_as: "shown as {format}",
        "显示为 {format}";
    topics_diff: "diff with previous",
        "与上一条比较";
    topics_no_previous: "No earlier message on this topic.",
        "该主题没有更早的消息。";
    topics_diff_too_big: "Too long to compare here.",
        "内容太长，无法在此比较。";
    topics_prop_format: "Payload format",
        "载荷格式";
    topics_prop_user: "User property {name}",
        "用户属性 {name}";
    topics_prop_subids: "Subscription ids",
        "订阅标识符";
    topics_prop_alias: "Topic alias",
        "主题别名";
    settings_store: "Message store",
        "消息存储";
    settings_store_messages: " messages",
        " 条消息";
    settings_store_keep: "payloads kept whole up to ",
        "完整保留载荷上限 ";
    settings_apply: "Apply",
        "应用";
    settings_store_hint: "Per connection shown; each other open connection keeps a quarter. When full, the oldest messages go and are counted; larger payloads are kept cut, with their real size shown.",
        "针对当前显示的连接；其他已打开的连接各保留四分之一。存满后丢弃最旧的消息并计数；更大的载荷截断保存，并显示实际大小。";
    about: "About",
        "关于";
    about_version: "Version",
        "版本";
    about_licence: "Licence",
        "许可证";
    about_licence_text: "MIT OR Apache-2.0. Bundled fonts: DejaVu Sans (DejaVu licence), Droid Sans Fallback (Apache-2.0).",
        "MIT OR Apache-2.0。内置字体：DejaVu Sans（DejaVu 许可证）、Droid Sans Fallback（Apache-2.0）。";
    about_third_party: "Open-source components ({n})",
        "开源组件（{n}）";
    about_third_party_hint: "Every crate built into this program, with its licence. The full licence texts ship with the package: /usr/share/doc/mpbridge/copyright (Linux), LICENSES.txt in the install folder (Windows), Contents/Resources/LICENSES.txt (macOS).",
        "编入本程序的每个 crate 及其许可证。完整许可证文本随安装包提供：/usr/share/doc/mpbridge/copyright（Linux）、安装目录中的 LICENSES.txt（Windows）、Contents/Resources/LICENSES.txt（macOS）。";
    broker_sni: "Server name (SNI)",
        "服务器名称（SNI）";
    topics_props5: "MQTT 5 properties",
        "MQTT 5 属性";
    topics_props5_off: "MQTT 5 properties need an MQTT 5 connection; this one is 3.1.1.",
        "MQTT 5 属性需要 MQTT 5 连接；当前连接为 3.1.1。";
    topics_content_type: "Content type",
        "内容类型";
    topics_response_topic: "Response topic",
        "响应主题";
    topics_correlation: "Correlation data",
        "关联数据";
    topics_expiry: "Message expiry (s)",
        "消息过期时间（秒）";
    topics_user_props: "User properties (key=value, one per line)",
        "用户属性（每行一个 key=value）";
    topics_payload_utf8: "payload is UTF-8",
        "载荷为 UTF-8";
    topics_connection: "Connection",
        "连接";
    broker_version: "MQTT version",
        "MQTT 版本";
    broker_session_expiry: "Session expiry (s)",
        "会话过期时间（秒）";
    broker_session_expiry_hint: "MQTT 5 only; empty: ends with the connection",
        "仅 MQTT 5；留空：随连接结束";
    broker_open: "Open connections",
        "已打开的连接";
    broker_show: "Show",
        "查看";
    broker_close: "Close",
        "关闭";
    broker_alongside: "Connect opens another connection; the others keep running.",
        "“连接”会新开一个连接，其他连接继续运行。";
    topics_publish_title: "Publish and clear retained",
        "发布与清除保留消息";
    topics_pub_topic: "Topic",
        "主题名";
    topics_pub_payload: "Payload",
        "载荷";
    topics_retain: "retain",
        "保留";
    topics_publish: "Publish",
        "发布";
    topics_publish_refused: "Not published to {topic}: {why}",
        "未发布到 {topic}：{why}";
    topics_sub_refused: "✗ refused",
        "✗ 被拒绝";
    topics_searching: "searching… {percent} %",
        "搜索中… {percent} %";
    topics_pick_color: "This subscription's colour in the list and the plot",
        "此订阅在列表和图表中的颜色";
    topics_history: "History:",
        "历史：";
    topics_clear_retained: "Clear retained under",
        "清除保留消息，范围";
    topics_preview: "Preview",
        "预览";
    topics_retained_found: "{n} retained message(s) found",
        "找到 {n} 条保留消息";
    topics_clear_n: "Clear {n}",
        "清除 {n} 条";
    topics_cleared: "Cleared {n} retained message(s), each acknowledged by the broker; it now holds {left} under this prefix.",
        "已清除 {n} 条保留消息，每条都经代理确认；此前缀下现在还有 {left} 条。";
    topics_clearing: "clearing {done} / {total}",
        "正在清除 {done} / {total}";
    // devices
    devices_new_id: "new device id",
        "新设备 ID";
    devices_add_device: "Add device",
        "添加设备";
    devices_edit: "Edit",
        "编辑";
    devices_save: "Save",
        "保存";
    devices_f_name: "Name",
        "名称";
    devices_f_prefix: "Topic prefix",
        "主题前缀";
    devices_f_availability: "Availability topic",
        "在线状态主题";
    devices_f_telemetry: "Telemetry topic",
        "遥测主题";
    devices_f_state: "State topic",
        "状态主题";
    devices_f_command: "Command topic",
        "命令主题";
    devices_f_online: "Online payload",
        "在线载荷";
    devices_f_offline: "Offline payload (last will)",
        "离线载荷（遗嘱）";
    devices_f_max_packet: "Max packet (bytes)",
        "最大报文（字节）";
    devices_f_max_qos: "Max QoS",
        "最高 QoS";
    devices_f_plot: "Plotted fields",
        "绘图字段";
    nav_devices: "Devices",
        "设备";
    devices_intro: "Every device with its availability, reconnects and telemetry; commands with their acknowledgements; the Mini Program demo flow; a simulator.",
        "每台设备的在线状态、重连次数和遥测数据；带确认的命令；小程序演示流程；设备模拟器。";
    devices_count: "{online} of {total} online",
        "{online} / {total} 在线";
    devices_simulate: "Simulate",
        "模拟";
    devices_sim_start: "Start simulator",
        "启动模拟器";
    devices_sim_stop: "Stop simulator",
        "停止模拟器";
    devices_sim_running: "{n} simulated devices running",
        "{n} 台模拟设备运行中";
    devices_discovery: "Discovery",
        "发现规则";
    devices_apply: "Apply",
        "应用";
    devices_discovered: "Discovered {n}:",
        "发现 {n} 台：";
    devices_add: "Add {n}",
        "添加 {n}";
    devices_add_all: "Add all",
        "全部添加";
    devices_none: "No devices: add them from the discovered list or in devices.toml.",
        "没有设备：可从发现列表添加，或写入 devices.toml。";
    devices_col_device: "Device",
        "设备";
    devices_col_state: "State",
        "状态";
    devices_col_seen: "Last seen",
        "最后活动";
    devices_col_reconnects: "Reconnects",
        "重连次数";
    devices_tick: "Tick to send a command to several devices",
        "勾选后可向多台设备发送命令";
    devices_state_online: "online",
        "在线";
    devices_offline: "offline",
        "离线";
    devices_unknown: "unknown",
        "未知";
    devices_flapping: "flapping",
        "频繁掉线";
    devices_remove: "Remove",
        "移除";
    devices_secs_ago: "{n} s ago",
        "{n} 秒前";
    devices_mins_ago: "{n} min ago",
        "{n} 分钟前";
    devices_hours_ago: "{n} h ago",
        "{n} 小时前";
    devices_limits: "max packet {bytes} B · QoS ≤ {qos} · MQTT {version}",
        "最大报文 {bytes} 字节 · QoS ≤ {qos} · MQTT {version}";
    devices_log: "Command log",
        "命令记录";
    devices_pending: "pending",
        "等待确认";
    devices_acked: "acknowledged in {ms} ms",
        "已确认，耗时 {ms} 毫秒";
    devices_timed_out: "timed out after {secs} s",
        "{secs} 秒后超时";
    devices_sent: "sent",
        "已发送";
    devices_no_commands: "No commands sent yet.",
        "尚未发送命令。";
    devices_commands: "Commands",
        "命令";
    devices_no_templates: "No command templates for this kind of device.",
        "此类设备没有命令模板。";
    devices_review: "Review the warnings",
        "查看警告";
    devices_send: "Send",
        "发送";
    devices_send_selection: "Send to {n} devices",
        "发送给 {n} 台设备";
    devices_confirm: "Click again to send anyway.",
        "再次点击仍然发送。";
    devices_flow: "Mini Program demo flow",
        "小程序演示流程";
    devices_flow_run: "Run the flow",
        "运行流程";
    devices_flow_intro: "Connect, subscribe one topic, subscribe several with different QoS, publish, unsubscribe one, unsubscribe several: on a new connection, as the demo Mini Program does.",
        "连接、订阅一个主题、以不同 QoS 订阅多个主题、发布、取消订阅一个、取消订阅多个：在新连接上，与演示小程序的操作一致。";
    devices_step_ok: "✓",
        "✓";
    devices_step_failed: "✗",
        "✗";
    devices_bad_pattern: "\"{pattern}\" is not a topic filter with a + where the device id is",
        "“{pattern}”不是带 +（设备 ID 位置）的主题过滤器";
    // checks
    nav_checks: "Checks",
        "合规检查";
    checks_intro: "Probe an address the way WeChat does (DNS, TLS, certificate, WebSocket upgrade, MQTT) and scan a Mini Program project: every rule gets a verdict and a fix.",
        "像微信一样探测一个地址（DNS、TLS、证书、WebSocket 升级、MQTT），并扫描小程序项目：每条规则都给出结论和修复方法。";
    checks_url: "Address",
        "地址";
    checks_run: "Run checks",
        "开始检查";
    checks_cancel: "Cancel",
        "取消";
    checks_credentials: "MQTT login",
        "MQTT 登录";
    checks_username: "user name",
        "用户名";
    checks_keepalive: "Keepalive test (75 s)",
        "心跳测试（75 秒）";
    checks_project: "Project",
        "项目";
    checks_project_hint: "Mini Program folder (optional)",
        "小程序项目文件夹（可选）";
    checks_progress: "{done} of {total} checks…",
        "已完成 {done} / {total} 项检查…";
    checks_nothing: "Run the checks to see every rule here.",
        "开始检查后，这里会列出每条规则。";
    checks_summary: "{pass} pass · {warn} warn · {fail} fail · {manual} manual · {skipped} skipped",
        "{pass} 通过 · {warn} 警告 · {fail} 失败 · {manual} 待人工确认 · {skipped} 跳过";
    checks_cancelled: "cancelled",
        "已取消";
    checks_copy_md: "Copy Markdown",
        "复制 Markdown";
    checks_copy_json: "Copy JSON",
        "复制 JSON";
    checks_save_md: "Save Markdown",
        "保存 Markdown";
    checks_save_json: "Save JSON",
        "保存 JSON";
    checks_whitelist: "socket合法域名:",
        "socket合法域名：";
    checks_snippet: "mqtt.connect for the Mini Program",
        "小程序中的 mqtt.connect";
    checks_snippet_note: "The address speaks MQTT, but the failures above must be fixed before phones can connect.",
        "该地址可以进行 MQTT 通信，但必须先修复上面的失败项，手机才能连接。";
    checks_history: "History",
        "历史记录";
    checks_no_history: "No runs yet.",
        "暂无记录。";
    checks_history_row: "{pass} pass · {warn} warn · {fail} fail",
        "{pass} 通过 · {warn} 警告 · {fail} 失败";
    checks_expand: "Click for the details and the fix",
        "点击查看详情与修复方法";
    checks_st_manual: "manual",
        "人工";
    checks_mark_open: "▾",
        "▾";
    checks_mark_closed: "▸",
        "▸";
    // certificates
    nav_certs: "Certificates",
        "证书";
    certs_intro: "Open a certificate (PEM, DER, .pfx/.p12, the cloud provider's zip) or fetch what a server presents: every rule gets a verdict and a fix.",
        "打开证书（PEM、DER、.pfx/.p12、云厂商下载的 zip），或获取服务器实际发送的证书链：每条规则都给出结论和修复方法。";
    certs_files_title: "Open files",
        "打开文件";
    certs_open: "Open files…",
        "打开文件…";
    certs_add: "Add",
        "添加";
    certs_path_hint: "path to a certificate, key, .pfx or .zip",
        "证书、私钥、.pfx 或 .zip 的路径";
    certs_clear: "Clear",
        "清空";
    certs_remove: "Remove",
        "移除";
    certs_password: "Password",
        "密码";
    certs_domain: "Domain",
        "域名";
    certs_check: "Check",
        "检查";
    certs_drop_hint: "Drop certificate, key, .pfx or .zip files anywhere on this panel.",
        "可将证书、私钥、.pfx 或 .zip 文件拖放到此面板的任意位置。";
    certs_fetch_title: "Fetch from a server",
        "从服务器获取";
    certs_target: "Host:port",
        "主机:端口";
    certs_sni: "SNI (optional)",
        "SNI（可选）";
    certs_fetch: "Fetch",
        "获取";
    certs_my_relay: "My relay",
        "本机中继";
    certs_working: "Working…",
        "处理中…";
    certs_summary: "{pass} pass · {warn} warn · {fail} fail · {skipped} skipped",
        "{pass} 通过 · {warn} 警告 · {fail} 失败 · {skipped} 跳过";
    certs_served: "Served by {host}: {version}, {cipher}, ALPN {alpn}",
        "{host} 实际返回：{version}，{cipher}，ALPN {alpn}";
    certs_findings: "Verdicts",
        "检查结果";
    certs_chain: "Chain, in the order given",
        "证书链（按给出的顺序）";
    certs_col_rule: "Rule",
        "规则";
    certs_col_detail: "Detail and fix",
        "详情与修复";
    certs_st_pass: "pass",
        "通过";
    certs_st_warn: "warn",
        "警告";
    certs_st_fail: "fail",
        "失败";
    certs_st_skip: "skip",
        "跳过";
    certs_role_leaf: "leaf",
        "叶子";
    certs_role_intermediate: "intermediate",
        "中间";
    certs_role_root: "root",
        "根";
    certs_role_unrelated: "unrelated",
        "无关";
    certs_days_left: "{days} days left",
        "剩余 {days} 天";
    certs_f_subject: "Subject",
        "主体";
    certs_f_issuer: "Issuer",
        "签发者";
    certs_f_signed_by: "Signed by",
        "签发证书";
    certs_f_names: "Names (SAN)",
        "名称（SAN）";
    certs_f_serial: "Serial",
        "序列号";
    certs_f_validity: "Valid",
        "有效期";
    certs_f_key: "Key",
        "密钥";
    certs_f_signature: "Signature",
        "签名算法";
    certs_f_ca: "CA",
        "CA";
    certs_f_key_usage: "Key usage",
        "密钥用法";
    certs_f_eku: "Extended key usage",
        "扩展密钥用法";
    certs_f_ca_issuers: "CA issuers (AIA)",
        "颁发者地址（AIA）";
    certs_f_source: "From",
        "来源";
    certs_signed_itself: "itself (self-signed)",
        "自身（自签名）";
    certs_signed_public: "public root “{name}”",
        "公共根证书“{name}”";
    certs_signed_supplied: "supplied CA “{name}”",
        "提供的 CA“{name}”";
    certs_signed_missing: "missing: not in what was opened",
        "缺失：不在已打开的文件中";
    certs_yes: "yes",
        "是";
    certs_no: "no",
        "否";
    certs_repair_title: "Repair",
        "修复";
    certs_repair_ready: "fullchain.pem can be built: {changes}",
        "可以生成 fullchain.pem：{changes}";
    certs_repair_fine: "The chain is in order; fullchain.pem can be saved as it is.",
        "证书链顺序正确，可以直接保存 fullchain.pem。";
    certs_save_fullchain: "Save fullchain.pem",
        "保存 fullchain.pem";
    certs_use_relay: "Use for relay",
        "用于中继";
    certs_written: "Written: {path}",
        "已写入：{path}";
    certs_relay_done: "Relay: {message}",
        "中继：{message}";
    certs_notes: "Notes",
        "说明";
    certs_nothing: "Nothing opened yet: open files, drop them here, or fetch a server's chain.",
        "尚未打开任何内容：请打开或拖放文件，或获取服务器的证书链。";
    // relay
    nav_relay: "Relay",
        "中继";
    relay_intro: "The WSS relay: TLS, the /mqtt WebSocket upgrade and the broker upstream — the nginx role, with every connection visible.",
        "WSS 中继：TLS、/mqtt WebSocket 升级和代理上游——替代 nginx，并显示每个连接。";
    relay: "Relay",
        "中继";
    relay_running: "running",
        "运行中";
    relay_draining: "draining",
        "正在排空";
    relay_stopped: "stopped",
        "已停止";
    relay_url: "Mini Program URL",
        "小程序地址";
    relay_start: "Start",
        "启动";
    relay_stop: "Stop",
        "停止";
    relay_apply: "Apply and reload",
        "应用并重新加载";
    relay_applied: "Relay: {message}",
        "中继：{message}";
    relay_apply_failed: "Not applied: {error}",
        "未应用：{error}";
    relay_export_nginx: "Export nginx config",
        "导出 nginx 配置";
    relay_nginx_title: "Equivalent nginx configuration",
        "等效的 nginx 配置";
    copy: "Copy",
        "复制";
    copied: "Copied",
        "已复制";
    close: "Close",
        "关闭";
    relay_config: "Configuration",
        "配置";
    relay_listen: "Listen address",
        "监听地址";
    relay_cert: "Certificate (full chain)",
        "证书（完整链）";
    relay_drop_hint: "Drop a certificate or key file on the window to fill its field (a name with “key” goes to the key).",
        "把证书或私钥文件拖到窗口上即可填入（文件名含“key”的填入私钥）。";
    relay_browse: "Browse…",
        "浏览…";
    relay_key: "Private key",
        "私钥";
    relay_cert_info: "{subject} · expires in {days} days · {n} certificates in the file",
        "{subject} · {days} 天后过期 · 文件含 {n} 张证书";
    relay_cert_expired: "{subject} · EXPIRED {days} days ago",
        "{subject} · 已过期 {days} 天";
    relay_route_path: "Path",
        "路径";
    relay_upstreams: "Upstreams (one per line: ws://host:port/path or tcp://host:port)",
        "上游（每行一个：ws://主机:端口/路径 或 tcp://主机:端口）";
    relay_require_subprotocol: "Require the mqtt subprotocol (400 without it)",
        "要求 mqtt 子协议（缺少时返回 400）";
    relay_add_route: "Add route",
        "添加路由";
    relay_remove_route: "Remove route",
        "删除路由";
    relay_limits: "Limits",
        "限制";
    relay_max_conn: "Max connections",
        "最大连接数";
    relay_max_conn_ip: "Max connections per IP (0: no cap)",
        "每 IP 最大连接数（0：不限）";
    relay_handshake_timeout: "Handshake timeout (s)",
        "握手超时（秒）";
    relay_idle_timeout: "Idle timeout (s)",
        "空闲超时（秒）";
    relay_max_message: "Max message size (bytes)",
        "最大消息大小（字节）";
    relay_connections: "Connections",
        "连接";
    relay_rejected: "Rejected",
        "已拒绝";
    relay_closed: "Closed",
        "已关闭";
    relay_throughput: "Throughput",
        "吞吐量";
    relay_bytes_in: "client → broker (bytes/s)",
        "客户端 → 代理（字节/秒）";
    relay_bytes_out: "broker → client (bytes/s)",
        "代理 → 客户端（字节/秒）";
    relay_filter: "Filter",
        "筛选";
    relay_no_connections: "No live connections.",
        "当前没有连接。";
    relay_no_rejections: "Nothing rejected.",
        "没有被拒绝的连接。";
    col_id: "ID",
        "编号";
    col_peer: "Peer",
        "来源";
    col_mini_program: "Mini Program",
        "小程序";
    col_client_id: "Client ID",
        "客户端 ID";
    col_user: "User",
        "用户名";
    col_upstream: "Upstream",
        "上游";
    col_in: "In",
        "入";
    col_out: "Out",
        "出";
    col_packets: "Packets",
        "报文";
    col_opened: "Opened",
        "打开于";
    col_status: "Status",
        "状态";
    col_reason: "Reason",
        "原因";
    col_close: "Closed by",
        "关闭方";
    col_tls: "TLS",
        "TLS";
    totals: "{live} live · {upgraded} upgraded · {rejected} rejected · {bytes_in} in · {bytes_out} out",
        "{live} 个在线 · 已升级 {upgraded} · 已拒绝 {rejected} · 入 {bytes_in} · 出 {bytes_out}";
}

impl Tr {
    /// The language of these strings.
    pub fn lang(&self) -> Language {
        if std::ptr::eq(self, &ZH) {
            Language::ZhCn
        } else {
            Language::En
        }
    }
}

pub fn tr(lang: Language) -> &'static Tr {
    match lang {
        Language::En => &EN,
        Language::ZhCn => &ZH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_match_between_languages_and_chinese_is_chinese() {
        use crate::i18n::{english_in_chinese, placeholders};
        for ((name, en), (_, zh)) in EN.all().into_iter().zip(ZH.all()) {
            assert_eq!(placeholders(en), placeholders(zh), "{name}: {en} / {zh}");
            assert!(
                !en.contains("{}"),
                "{name}: a placeholder needs a name: {en}"
            );
            assert_eq!(english_in_chinese(zh), None, "{name}: {zh}");
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
