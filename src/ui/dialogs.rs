//! The editors' dialogs: forms (each error under its field), pickers, the
//! callout text area, and the save / discard / stay and delete questions.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, HighlightSpacing, List, ListItem, ListState, Paragraph, Wrap};

use super::mappings::fit;
use super::overlays::{boxed, centered};
use crate::app::{App, Editor, FormFor, Leave, PickFor, Popup};
use crate::editor::form::{Form, Picker};
use crate::editor::plans::CalloutsFor;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    match &app.popup {
        None => {}
        Some(Popup::Form(form)) => self::form(app, frame, area, form),
        Some(Popup::Picker(picker)) => self::picker(app, frame, area, picker),
        Some(Popup::Callouts {
            text,
            error,
            target,
        }) => {
            let whose = match target {
                CalloutsFor::Plan => "the plan's".to_string(),
                CalloutsFor::Vm(id) => format!("{}'s", app.model.vm_name(id)),
            };
            let title = format!(" Callouts, {whose}: Esc keeps them ");
            let popup = centered(area, 84, area.height.saturating_sub(2).max(8));
            frame.render_widget(Clear, popup);
            let block = boxed(app, &title);
            let inner = block.inner(popup);
            frame.render_widget(block, popup);
            let [help, editor, status] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Min(2),
                Constraint::Length(1),
            ])
            .areas(inner);
            let t = &app.theme;
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(Span::styled(
                        "One per line: pre|post command [120s]: /path/cmd args",
                        t.get("dim"),
                    )),
                    Line::from(Span::styled(
                        "          or: pre|post prompt: message to acknowledge",
                        t.get("dim"),
                    )),
                ]),
                help,
            );
            frame.render_widget(&**text, editor);
            if let Some(why) = error {
                frame.render_widget(
                    Paragraph::new(Span::styled(format!("✖ {why}"), t.get("crit"))),
                    status,
                );
            }
        }
        Some(Popup::Leave(leave)) => {
            let what = match &app.editor {
                Some(Editor::Group(g)) => format!("group {}", g.name),
                Some(Editor::Plan(p)) => format!("plan {}", p.spec.name),
                None => "the mappings".into(),
            };
            let going = match leave {
                Leave::Quit => "before quitting",
                Leave::Show(_) => "before leaving",
                Leave::Close => "before going back",
            };
            question(
                app,
                frame,
                area,
                " Unsaved changes ",
                &format!("{what}: unsaved changes. Save them {going}?"),
                "s save   d discard   Esc stay",
            );
        }
        Some(Popup::Delete { what, .. }) => question(
            app,
            frame,
            area,
            " Delete ",
            &format!("Delete {what}? This cannot be undone."),
            "y delete   n/Esc keep",
        ),
    }
}

fn question(app: &App, frame: &mut Frame, area: Rect, title: &str, text: &str, keys: &str) {
    let t = &app.theme;
    let popup = centered(area, 60, 5);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(text.to_string()),
            Line::from(""),
            Line::from(Span::styled(keys.to_string(), t.get("key"))),
        ])
        .wrap(Wrap { trim: true })
        .block(boxed(app, title)),
        popup,
    );
}

fn form(app: &App, frame: &mut Frame, area: Rect, form: &Form<FormFor>) {
    let t = &app.theme;
    let width = 66u16.min(area.width);
    let value_width = width.saturating_sub(20) as usize;
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let label = Span::styled(
            format!("{:>14} ", field.label),
            t.get(if focused { "accent" } else { "dim" }),
        );
        let value = if !field.choices.is_empty() {
            Span::styled(
                format!("‹ {} ›", field.value),
                t.get(if focused { "selected" } else { "base" }),
            )
        } else if field.value.is_empty() && !focused {
            let hint = if field.hint.starts_with('(') {
                field.hint.to_string()
            } else {
                format!("e.g. {}", field.hint)
            };
            Span::styled(fit(&hint, value_width), t.get("dim"))
        } else if focused {
            let shown = tail(&field.value, value_width.saturating_sub(1));
            Span::styled(format!("{shown}█"), t.get("base"))
        } else {
            Span::raw(fit(&field.value, value_width))
        };
        lines.push(Line::from(vec![label, value]));
        if let Some(why) = &field.error {
            lines.push(Line::from(Span::styled(
                format!("{:>14} ✖ {why}", ""),
                t.get("crit"),
            )));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Tab/↑↓ field  ←→ choice  Enter done  Esc cancel",
        t.get("dim"),
    )));
    let popup = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(boxed(app, &form.title)),
        popup,
    );
}

/// The last `width` characters: a long value keeps its end in view.
fn tail(text: &str, width: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(width)).collect()
}

fn picker(app: &App, frame: &mut Frame, area: Rect, picker: &Picker<PickFor>) {
    let t = &app.theme;
    let width = 76u16.min(area.width);
    let items: Vec<ListItem> = picker
        .items
        .iter()
        .map(|item| {
            let mut spans = Vec::new();
            if picker.multi {
                spans.push(Span::raw(if item.chosen { "[x] " } else { "[ ] " }));
            } else {
                spans.push(Span::raw(if item.chosen { "● " } else { "  " }));
            }
            spans.push(Span::raw(format!("{} ", item.label)));
            spans.push(Span::styled(item.note.clone(), t.get("dim")));
            if let Some(why) = &item.refused {
                spans.push(Span::styled(format!(" ✖ {why}"), t.get("crit")));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let height = (picker.items.len() as u16 + 3).min(area.height);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let hint = if picker.multi {
        " Space choose · Enter done · Esc cancel "
    } else {
        " Enter pick · Esc cancel "
    };
    let block = boxed(app, &picker.title).title_bottom(Span::styled(hint, t.get("dim")));
    let list = List::new(items)
        .block(block)
        .highlight_style(t.get("selected"))
        .highlight_symbol("▶")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = ListState::default().with_selected(Some(picker.selected));
    frame.render_stateful_widget(list, popup, &mut state);
}
