//! Chinese text must render even on a machine without any CJK font. The console asks the
//! system fonts first (eframe's `system_fonts` provider), and only then falls back to the
//! bundled subset of Droid Sans Fallback (GB2312 plus CJK punctuation, ~1 MB).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use egui::{
    FallbackRequest, FontData, FontFamily, FontInsert, FontPriority, FontProvider, InsertFontFamily,
};

static FONT: &[u8] = include_bytes!("../../assets/fonts/cjk-subset.ttf");
static CHARS: &str = include_str!("../../assets/fonts/cjk-subset.chars");

/// The characters the bundled font has glyphs for.
pub fn bundled_coverage() -> &'static HashSet<char> {
    static SET: OnceLock<HashSet<char>> = OnceLock::new();
    SET.get_or_init(|| CHARS.chars().collect())
}

/// Offers the bundled CJK font for any character it covers.
struct BundledCjk;

impl FontProvider for BundledCjk {
    fn font_for(&self, request: &FallbackRequest<'_>) -> Option<FontInsert> {
        let first = request.cluster.chars().next()?;
        if !bundled_coverage().contains(&first) {
            return None;
        }
        Some(FontInsert {
            name: "mpbridge-cjk".to_owned(),
            data: FontData::from_static(FONT),
            families: [FontFamily::Proportional, FontFamily::Monospace]
                .into_iter()
                .map(|family| InsertFontFamily {
                    family,
                    priority: FontPriority::Lowest,
                })
                .collect(),
        })
    }
}

/// Installs the bundled fallback after whatever providers the context already has (eframe
/// adds the system font provider first, so system fonts win when present).
pub fn install(ctx: &egui::Context) {
    ctx.add_font_provider(Arc::new(BundledCjk));
}
