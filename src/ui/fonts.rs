//! Chinese text (and the few symbols the console draws) must render even on a machine without
//! any CJK font. The console asks the system fonts first (eframe's `system_fonts` provider),
//! and only then falls back to two bundled subsets built by `tools/subset-fonts.py`:
//! Droid Sans Fallback cut to GB2312 plus CJK punctuation (~1 MB), and DejaVu Sans cut to
//! punctuation, arrows and symbols (~160 KB).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use egui::{
    FallbackRequest, FontData, FontFamily, FontInsert, FontPriority, FontProvider, InsertFontFamily,
};

struct Bundled {
    name: &'static str,
    font: &'static [u8],
    chars: &'static str,
    coverage: OnceLock<HashSet<char>>,
}

impl Bundled {
    fn covers(&self, c: char) -> bool {
        self.coverage
            .get_or_init(|| self.chars.chars().collect())
            .contains(&c)
    }
}

static BUNDLED: [Bundled; 2] = [
    Bundled {
        name: "mpbridge-cjk",
        font: include_bytes!("../../assets/fonts/cjk-subset.ttf"),
        chars: include_str!("../../assets/fonts/cjk-subset.chars"),
        coverage: OnceLock::new(),
    },
    Bundled {
        name: "mpbridge-symbols",
        font: include_bytes!("../../assets/fonts/symbols-subset.ttf"),
        chars: include_str!("../../assets/fonts/symbols-subset.chars"),
        coverage: OnceLock::new(),
    },
];

/// Whether a bundled font has a glyph for `c`.
pub fn bundled_covers(c: char) -> bool {
    BUNDLED.iter().any(|b| b.covers(c))
}

/// Offers a bundled font for any character it covers.
struct BundledFonts;

impl FontProvider for BundledFonts {
    fn font_for(&self, request: &FallbackRequest<'_>) -> Option<FontInsert> {
        let first = request.cluster.chars().next()?;
        let b = BUNDLED.iter().find(|b| b.covers(first))?;
        Some(FontInsert {
            name: b.name.to_owned(),
            data: FontData::from_static(b.font),
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

/// Installs the bundled fallbacks after whatever providers the context already has (eframe
/// adds the system font provider first, so system fonts win when present).
pub fn install(ctx: &egui::Context) {
    ctx.add_font_provider(Arc::new(BundledFonts));
}
