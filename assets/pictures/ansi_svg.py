"""Turns a terminal screen captured with `tmux capture-pane -e -p` (text with
SGR colour escapes) into an SVG picture: one <rect> per run of background
colour, one <text> per run of same-styled characters, in a monospace grid.

Only what tmux emits is understood: SGR 0/1/2/3/4/7/22/23/24/27, 30-37,
39, 40-47, 49, 90-97, 100-107, 38;5;N, 48;5;N, 38;2;R;G;B and 48;2;R;G;B.
"""

import html
import re

# A dark terminal's palette (the 16 ANSI colours), for `38;5;0..15`.
PALETTE = [
    "#1d2021", "#cc241d", "#98971a", "#d79921", "#458588", "#b16286", "#689d6a", "#a89984",
    "#7c6f64", "#fb4934", "#b8bb26", "#fabd2f", "#83a598", "#d3869b", "#8ec07c", "#ebdbb2",
]
DEFAULT_FG = "#d5c4a1"
DEFAULT_BG = "#1d2021"
CELL_W = 8.4
CELL_H = 17.0
FONT = "'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace"

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    grey = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (grey, grey, grey)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = False
        self.dim = False
        self.italic = False
        self.underline = False
        self.reverse = False

    def key(self):
        return (self.fg, self.bg, self.bold, self.dim, self.italic, self.underline, self.reverse)

    def apply(self, params):
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = PALETTE[c - 30]
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = PALETTE[c - 40]
            elif c == 49:
                self.bg = None
            elif 90 <= c <= 97:
                self.fg = PALETTE[c - 90 + 8]
            elif 100 <= c <= 107:
                self.bg = PALETTE[c - 100 + 8]
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    value = colour_256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    value = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    value = None
                if c == 38:
                    self.fg = value
                else:
                    self.bg = value
            i += 1


def cells(screen):
    """Rows of (char, style key) from the captured text."""
    rows = []
    style = Style()
    for line in screen.split("\n"):
        row = []
        pos = 0
        for m in SGR.finditer(line):
            row.extend((ch, style.key()) for ch in line[pos:m.start()])
            style.apply(m.group(1))
            pos = m.end()
        row.extend((ch, style.key()) for ch in line[pos:])
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def colours(key):
    fg, bg, bold, dim, _italic, _underline, reverse = key
    fg = fg or DEFAULT_FG
    bg = bg or DEFAULT_BG
    if reverse:
        fg, bg = bg, fg
    return fg, bg


def runs(row):
    """Consecutive cells of one style, as (start column, text, style key)."""
    out = []
    for col, (ch, key) in enumerate(row):
        if out and out[-1][2] == key:
            out[-1][1].append(ch)
        else:
            out.append((col, [ch], key))
    return [(col, "".join(chars), key) for col, chars, key in out]


def to_svg(screen, cols, rows, title):
    grid = cells(screen)
    width = cols * CELL_W + 2 * CELL_W
    height = rows * CELL_H + 2 * CELL_H
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">'
        % (width, height, width, height),
        "<title>%s</title>" % html.escape(title),
        '<rect width="100%%" height="100%%" rx="8" fill="%s"/>' % DEFAULT_BG,
        '<g transform="translate(%.1f %.1f)" font-family="%s" font-size="14" xml:space="preserve">'
        % (CELL_W, CELL_H, FONT),
    ]
    for y, row in enumerate(grid[:rows]):
        for col, text, key in runs(row[:cols]):
            fg, bg = colours(key)
            if bg != DEFAULT_BG:
                parts.append(
                    '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                    % (col * CELL_W, y * CELL_H, len(text) * CELL_W, CELL_H, bg)
                )
            if not text.strip():
                continue
            attrs = ['fill="%s"' % fg]
            if key[2]:
                attrs.append('font-weight="bold"')
            if key[3]:
                attrs.append('opacity="0.7"')
            if key[4]:
                attrs.append('font-style="italic"')
            if key[5]:
                attrs.append('text-decoration="underline"')
            # textLength keeps box-drawing and wide symbols on the grid.
            parts.append(
                '<text x="%.1f" y="%.1f" textLength="%.1f" lengthAdjust="spacingAndGlyphs" %s>%s</text>'
                % (col * CELL_W, y * CELL_H + CELL_H * 0.78, len(text) * CELL_W, " ".join(attrs),
                   html.escape(text))
            )
    parts.append("</g></svg>")
    return "\n".join(parts) + "\n"
