//! Plain-text tables for the terminal: columns padded to their widest cell,
//! a header row, two spaces between columns, no trailing blanks.

/// Lays out `rows` under `header`; every row has the header's length.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(w - width(cell)));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_on_characters_not_bytes() {
        let text = super::render(
            &["VM", "State"],
            &[
                vec!["db-01".into(), "✔ ok".into()],
                vec!["web-06".into(), "✖ violated".into()],
            ],
        );
        assert_eq!(text, "VM      State\ndb-01   ✔ ok\nweb-06  ✖ violated\n");
    }
}
