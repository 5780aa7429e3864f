//! What the snapshot tests share: a frame rendered to plain text, one line
//! per row with trailing blanks cut, so a snapshot shows what a reader sees.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::app::App;

/// `app` rendered at `width` x `height`, as text.
pub fn render_to_string(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| super::render(app, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
