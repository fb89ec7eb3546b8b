//! Colours and sizes used across panels, in one place.

use egui::Color32;

pub const OK: Color32 = Color32::from_rgb(0x2e, 0xa0, 0x43);
pub const WARN: Color32 = Color32::from_rgb(0xd2, 0x99, 0x22);
pub const BAD: Color32 = Color32::from_rgb(0xd0, 0x3b, 0x3b);
pub const MUTED: Color32 = Color32::from_rgb(0x8a, 0x8f, 0x98);
pub const ACCENT: Color32 = Color32::from_rgb(0x1a, 0x7f, 0xd4);

pub const NAV_WIDTH: f32 = 150.0;
pub const ROW_HEIGHT: f32 = 18.0;
pub const CARD_WIDTH: f32 = 190.0;

/// A status chip: white bold text on a coloured background (pass / warn / fail …).
pub fn chip(text: &str, bg: Color32) -> egui::RichText {
    egui::RichText::new(format!(" {text} "))
        .color(Color32::WHITE)
        .background_color(bg)
        .strong()
}
