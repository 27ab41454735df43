// PNG plots of training curves: an RGB canvas with a built-in bitmap font, written by libpng's
// simplified API. See plot.h for the layout and the error contract.
#include "app/plot.h"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace pe {

namespace {

// ------------------------------------------------------------------------------------ font
// 5x8 glyphs for ASCII 32..126, column-major: 5 bytes per glyph, bit 0 = top row, bit 7 = the
// descender row (g, j, p, q, y, comma). The classic public-domain HD44780-style table.
constexpr std::uint8_t kFont[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x80, 0x60, 0x20, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02},                                                       // '/'
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00}, {0x42, 0x61, 0x51, 0x49, 0x46},
    {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39},
    {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03}, {0x36, 0x49, 0x49, 0x49, 0x36},
    {0x06, 0x49, 0x49, 0x29, 0x1E},                                                       // '9'
    {0x00, 0x36, 0x36, 0x00, 0x00}, {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00},
    {0x14, 0x14, 0x14, 0x14, 0x14}, {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06},
    {0x32, 0x49, 0x79, 0x41, 0x3E},                                                       // '@'
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43},                       // 'Z'
    {0x00, 0x7F, 0x41, 0x41, 0x00}, {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00},
    {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00},
    {0x20, 0x54, 0x54, 0x54, 0x78}, {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20},
    {0x38, 0x44, 0x44, 0x48, 0x7F}, {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02},
    {0x18, 0xA4, 0xA4, 0xA4, 0x7C}, {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00},
    {0x40, 0x80, 0x84, 0x7D, 0x00}, {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00},
    {0x7C, 0x04, 0x18, 0x04, 0x78}, {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38},
    {0xFC, 0x24, 0x24, 0x24, 0x18}, {0x18, 0x24, 0x24, 0x24, 0xFC}, {0x7C, 0x08, 0x04, 0x04, 0x08},
    {0x48, 0x54, 0x54, 0x54, 0x20}, {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C},
    {0x1C, 0x20, 0x40, 0x20, 0x1C}, {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44},
    {0x1C, 0xA0, 0xA0, 0xA0, 0x7C}, {0x44, 0x64, 0x54, 0x4C, 0x44},                       // 'z'
    {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00},
    {0x08, 0x04, 0x08, 0x10, 0x08},                                                       // '~'
};
constexpr int kGlyphAdvance = 6;  // 5 columns + 1 blank
constexpr int kGlyphCap = 7;      // rows above the descender

// ------------------------------------------------------------------------------------ canvas
struct Rgb {
  std::uint8_t r, g, b;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

// tab10: distinguishable on white and for most colour-vision deficiencies in the first few entries.
constexpr Rgb kPalette[10] = {{0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28},
                              {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f},
                              {0xbc, 0xbd, 0x22}, {0x17, 0xbe, 0xcf}};
constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kGrid{0xe6, 0xe6, 0xe6};
constexpr Rgb kFrame{0x50, 0x50, 0x50};
constexpr Rgb kText{0x20, 0x20, 0x20};
constexpr Rgb kMuted{0x90, 0x90, 0x90};
constexpr Rgb kLegendBorder{0xb0, 0xb0, 0xb0};

struct Rect {  // inclusive pixel bounds
  int x0, y0, x1, y1;
  bool contains(int x, int y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<std::size_t>(w) * h * 3, 255) {}
  int width() const { return w_; }
  int height() const { return h_; }
  const std::uint8_t* data() const { return px_.data(); }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    std::uint8_t* p = &px_[(static_cast<std::size_t>(y) * w_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  Rgb get(int x, int y) const {
    const std::uint8_t* p = &px_[(static_cast<std::size_t>(y) * w_ + x) * 3];
    return {p[0], p[1], p[2]};
  }
  void fill(Rect r, Rgb c) {
    for (int y = std::max(r.y0, 0); y <= std::min(r.y1, h_ - 1); ++y)
      for (int x = std::max(r.x0, 0); x <= std::min(r.x1, w_ - 1); ++x) set(x, y, c);
  }
  void outline(Rect r, Rgb c) {
    fill({r.x0, r.y0, r.x1, r.y0}, c);
    fill({r.x0, r.y1, r.x1, r.y1}, c);
    fill({r.x0, r.y0, r.x0, r.y1}, c);
    fill({r.x1, r.y0, r.x1, r.y1}, c);
  }
  // A 2-px-wide line (Bresenham, each step stamps a 2x2 block), clipped to `clip`.
  void line(int x0, int y0, int x1, int y1, Rgb c, const Rect& clip) {
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      for (int oy = 0; oy < 2; ++oy)
        for (int ox = 0; ox < 2; ++ox)
          if (clip.contains(x0 + ox, y0 + oy)) set(x0 + ox, y0 + oy, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;
};

int text_width(const std::string& s, int scale) {
  return s.empty() ? 0 : static_cast<int>(s.size()) * kGlyphAdvance * scale - scale;
}

// Draws `s` with its top-left corner at (x, y); characters outside printable ASCII show as '?'.
void draw_text(Canvas& cv, int x, int y, const std::string& s, int scale, Rgb c) {
  for (unsigned char ch : s) {
    if (ch < 32 || ch > 126) ch = '?';
    const std::uint8_t* g = kFont[ch - 32];
    for (int col = 0; col < 5; ++col)
      for (int row = 0; row < 8; ++row)
        if (g[col] >> row & 1) cv.fill({x + col * scale, y + row * scale, x + (col + 1) * scale - 1,
                                        y + (row + 1) * scale - 1}, c);
    x += kGlyphAdvance * scale;
  }
}

// Shortens `s` with "..." so that it is at most `max_px` wide.
std::string fit_text(const std::string& s, int scale, int max_px) {
  if (text_width(s, scale) <= max_px) return s;
  const int max_chars = (max_px + scale) / (kGlyphAdvance * scale);
  if (max_chars <= 3) return s.substr(0, static_cast<std::size_t>(std::max(max_chars, 0)));
  return s.substr(0, static_cast<std::size_t>(max_chars - 3)) + "...";
}

// ------------------------------------------------------------------------------------ axes
struct Tick {
  double value;  // data value (on a log axis: the value, not its exponent)
  std::string label;
};

double nice_step(double span, int target) {
  const double raw = span / std::max(target, 1);
  if (!(raw > 0) || !std::isfinite(raw)) return 0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double m = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return m * mag;
}

std::vector<Tick> linear_axis_ticks(double lo, double hi, int target) {
  const double step = nice_step(hi - lo, target);
  std::vector<Tick> out;
  for (double v : plot_detail::linear_ticks(lo, hi, target))
    out.push_back({v, plot_detail::format_tick(v, step)});
  return out;
}

// Ticks for a log axis spanning exponents [lo_e, hi_e]: decades (every k-th when many), 1-2-5 within
// a short span, and plain linear ticks when even that gives fewer than three.
std::vector<Tick> log_axis_ticks(double lo_e, double hi_e) {
  std::vector<Tick> out;
  const double eps = 1e-9;
  const int e0 = static_cast<int>(std::floor(lo_e)), e1 = static_cast<int>(std::ceil(hi_e));
  const double span = hi_e - lo_e;
  if (span >= 2.0) {
    const int every = std::max(1, static_cast<int>(std::ceil(span / 7.0)));
    for (int e = e0; e <= e1; ++e) {
      if (((e % every) + every) % every != 0 || e < lo_e - eps || e > hi_e + eps) continue;
      const double v = std::pow(10.0, e);
      out.push_back({v, plot_detail::format_tick(v, v)});
    }
    return out;
  }
  for (int e = e0; e <= e1; ++e) {
    const double mag = std::pow(10.0, e);
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * mag, le = std::log10(v);
      if (le >= lo_e - eps && le <= hi_e + eps) out.push_back({v, plot_detail::format_tick(v, mag)});
    }
  }
  if (out.size() >= 3) return out;
  return linear_axis_ticks(std::pow(10.0, lo_e), std::pow(10.0, hi_e), 4);
}

struct Axis {
  double lo = 0, hi = 1;  // on a log axis: exponents
  bool log = false;
  double map(double v) const { return log ? std::log10(v) : v; }
};

// Grows [lo, hi] by `frac` of its span on each side; a zero span gets a span of its own.
void pad_range(double& lo, double& hi, double frac) {
  if (hi - lo <= 0 || !std::isfinite(hi - lo)) {
    const double d = lo == 0 ? 1.0 : std::abs(lo) * 0.05;
    lo -= d;
    hi += d;
    return;
  }
  const double d = (hi - lo) * frac;
  lo -= d;
  hi += d;
}

// A pixel coordinate from a data fraction, kept finite and bounded so Bresenham stays cheap.
int to_px(double v) {
  if (!std::isfinite(v)) return 0;
  return static_cast<int>(std::lround(std::clamp(v, -1e5, 1e5)));
}

// ------------------------------------------------------------------------------------ panel
constexpr int kTitleScale = 3;
constexpr int kPanelTitleScale = 2;
constexpr int kLabelScale = 2;

void draw_panel(Canvas& cv, const PlotPanel& panel, Rect cell) {
  const auto valid = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!panel.log_y || y > 0);
  };

  // Data ranges over the points that will be drawn.
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  bool any = false;
  for (const PlotSeries& s : panel.series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!valid(s.x[i], s.y[i])) continue;
      const double y = panel.log_y ? std::log10(s.y[i]) : s.y[i];
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, y);
      yhi = std::max(yhi, y);
      any = true;
    }
  Axis ax, ay;
  ay.log = panel.log_y;
  if (any) {  // otherwise an empty [0, 1] x [0, 1] (log: 1..10) frame
    ax.lo = xlo;
    ax.hi = xhi;
    ay.lo = ylo;
    ay.hi = yhi;
  }
  pad_range(ax.lo, ax.hi, 0.02);
  if (ay.log && ay.hi - ay.lo <= 0) {
    ay.lo -= 0.5;
    ay.hi += 0.5;
  } else {
    pad_range(ay.lo, ay.hi, 0.05);
  }

  // Y ticks first: their widest label sets the left margin.
  const std::vector<Tick> yt = ay.log ? log_axis_ticks(ay.lo, ay.hi) : linear_axis_ticks(ay.lo, ay.hi, 6);
  int ylabel_w = 0;
  for (const Tick& t : yt) ylabel_w = std::max(ylabel_w, text_width(t.label, kLabelScale));
  const int gh = kGlyphCap * kLabelScale;  // cap height of label text
  Rect plot{cell.x0 + 14 + ylabel_w + 10, cell.y0 + 40, cell.x1 - 24, cell.y1 - 56};

  // X ticks: as many as fit without labels touching.
  std::vector<Tick> xt;
  for (int target = 7; target >= 2; --target) {
    xt = linear_axis_ticks(ax.lo, ax.hi, target);
    int widest = 0;
    for (const Tick& t : xt) widest = std::max(widest, text_width(t.label, kLabelScale));
    const double spacing = xt.size() < 2 ? 1e9
                                         : (xt[1].value - xt[0].value) / (ax.hi - ax.lo) * (plot.x1 - plot.x0);
    if (widest + 16 <= spacing) break;
  }

  const auto px_x = [&](double x) { return to_px(plot.x0 + (x - ax.lo) / (ax.hi - ax.lo) * (plot.x1 - plot.x0)); };
  const auto px_y = [&](double y) {
    return to_px(plot.y1 - (ay.map(y) - ay.lo) / (ay.hi - ay.lo) * (plot.y1 - plot.y0));
  };

  // Grid.
  for (const Tick& t : xt) cv.fill({px_x(t.value), plot.y0, px_x(t.value), plot.y1}, kGrid);
  for (const Tick& t : yt) cv.fill({plot.x0, px_y(t.value), plot.x1, px_y(t.value)}, kGrid);

  // Series, inside the frame; a gap at every skipped point, a dot for an isolated point.
  const Rect inner{plot.x0 + 1, plot.y0 + 1, plot.x1 - 1, plot.y1 - 1};
  for (std::size_t si = 0; si < panel.series.size(); ++si) {
    const PlotSeries& s = panel.series[si];
    const Rgb c = kPalette[si % 10];
    bool have_prev = false;
    int prev_x = 0, prev_y = 0;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!valid(s.x[i], s.y[i])) {
        have_prev = false;
        continue;
      }
      const int x = px_x(s.x[i]), y = px_y(s.y[i]);
      const bool next_valid = i + 1 < s.x.size() && valid(s.x[i + 1], s.y[i + 1]);
      if (have_prev) {
        cv.line(prev_x, prev_y, x, y, c, inner);
      } else if (!next_valid) {
        for (int oy = -2; oy <= 3; ++oy)
          for (int ox = -2; ox <= 3; ++ox)
            if (inner.contains(x + ox, y + oy)) cv.set(x + ox, y + oy, c);
      }
      have_prev = true;
      prev_x = x;
      prev_y = y;
    }
  }
  if (!any) {
    const std::string msg = "no data";
    draw_text(cv, (plot.x0 + plot.x1 - text_width(msg, kLabelScale)) / 2, (plot.y0 + plot.y1 - gh) / 2, msg,
              kLabelScale, kMuted);
  }

  // Legend in the plot corner that covers the fewest drawn data pixels.
  if (!panel.series.empty()) {
    std::vector<std::string> names;
    int name_w = 0;
    for (std::size_t si = 0; si < panel.series.size(); ++si) {
      std::string n = panel.series[si].name.empty() ? "series " + std::to_string(si + 1) : panel.series[si].name;
      n = fit_text(n, kLabelScale, (plot.x1 - plot.x0) / 2);
      name_w = std::max(name_w, text_width(n, kLabelScale));
      names.push_back(std::move(n));
    }
    const int row_h = 22, pad = 8, swatch = 26;
    const int bw = pad + swatch + 8 + name_w + pad;
    const int bh = pad + static_cast<int>(names.size()) * row_h - (row_h - gh) + pad;
    const int m = 10;
    const Rect corners[4] = {
        {plot.x1 - m - bw, plot.y0 + m, plot.x1 - m, plot.y0 + m + bh},  // upper right
        {plot.x0 + m, plot.y0 + m, plot.x0 + m + bw, plot.y0 + m + bh},  // upper left
        {plot.x0 + m, plot.y1 - m - bh, plot.x0 + m + bw, plot.y1 - m},  // lower left
        {plot.x1 - m - bw, plot.y1 - m - bh, plot.x1 - m, plot.y1 - m},  // lower right
    };
    Rect box = corners[0];
    long best = -1;
    for (const Rect& r : corners) {
      long n = 0;
      for (int y = std::max(r.y0, 0); y <= std::min(r.y1, cv.height() - 1); ++y)
        for (int x = std::max(r.x0, 0); x <= std::min(r.x1, cv.width() - 1); ++x) {
          const Rgb p = cv.get(x, y);
          if (!(p == kWhite) && !(p == kGrid)) ++n;
        }
      if (best < 0 || n < best) {
        best = n;
        box = r;
      }
    }
    cv.fill(box, kWhite);
    cv.outline(box, kLegendBorder);
    for (std::size_t si = 0; si < names.size(); ++si) {
      const int ty = box.y0 + pad + static_cast<int>(si) * row_h;
      const int cy = ty + gh / 2;
      cv.fill({box.x0 + pad, cy - 2, box.x0 + pad + swatch - 1, cy + 1}, kPalette[si % 10]);
      draw_text(cv, box.x0 + pad + swatch + 8, ty, names[si], kLabelScale, kText);
    }
  }

  // Frame, tick marks and labels.
  cv.outline(plot, kFrame);
  for (const Tick& t : xt) {
    const int x = px_x(t.value);
    cv.fill({x, plot.y1 + 1, x, plot.y1 + 5}, kFrame);
    draw_text(cv, x - text_width(t.label, kLabelScale) / 2, plot.y1 + 10, t.label, kLabelScale, kText);
  }
  for (const Tick& t : yt) {
    const int y = px_y(t.value);
    cv.fill({plot.x0 - 5, y, plot.x0 - 1, y}, kFrame);
    draw_text(cv, plot.x0 - 10 - text_width(t.label, kLabelScale), y - gh / 2, t.label, kLabelScale, kText);
  }
  const std::string xlabel = "step";
  draw_text(cv, (plot.x0 + plot.x1 - text_width(xlabel, kLabelScale)) / 2, plot.y1 + 34, xlabel, kLabelScale,
            kMuted);

  const std::string title = fit_text(panel.title + (panel.log_y ? " (log)" : ""), kPanelTitleScale,
                                     cell.x1 - cell.x0 - 20);
  const int tw = text_width(title, kPanelTitleScale);
  const int tx = std::clamp((plot.x0 + plot.x1 - tw) / 2, cell.x0 + 10, cell.x1 - 10 - tw);
  draw_text(cv, tx, cell.y0 + 14, title, kPanelTitleScale, kText);
}

// ------------------------------------------------------------------------------------ file output
std::atomic<unsigned> g_tmp_counter{0};

struct TempFile {
  std::string path;
  FILE* f = nullptr;
  bool committed = false;
  ~TempFile() {
    if (f) std::fclose(f);
    if (!committed && !path.empty()) std::remove(path.c_str());
  }
};

void write_png_atomic(const std::string& path, const Canvas& cv) {
  TempFile tmp;
  const std::string tmp_path = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_tmp_counter++);
  tmp.f = std::fopen(tmp_path.c_str(), "wb");
  if (!tmp.f) PE_FAIL("write_plot_png: cannot create '", path, "' (temporary '", tmp_path, "'): ", std::strerror(errno));
  tmp.path = tmp_path;

  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(cv.width());
  img.height = static_cast<png_uint_32>(cv.height());
  img.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_stdio(&img, tmp.f, 0, cv.data(), 0, nullptr);
  const std::string msg = img.message;
  png_image_free(&img);
  if (!ok) PE_FAIL("write_plot_png: cannot write '", path, "': libpng: ", msg);

  if (std::fflush(tmp.f) != 0 || ::fsync(::fileno(tmp.f)) != 0)
    PE_FAIL("write_plot_png: cannot write '", path, "': ", std::strerror(errno));
  FILE* f = tmp.f;
  tmp.f = nullptr;
  if (std::fclose(f) != 0) PE_FAIL("write_plot_png: cannot write '", path, "': ", std::strerror(errno));
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0)
    PE_FAIL("write_plot_png: cannot rename '", tmp_path, "' to '", path, "': ", std::strerror(errno));
  tmp.committed = true;
}

}  // namespace

// ------------------------------------------------------------------------------------ public API
namespace plot_detail {

std::string format_tick(double v, double step) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
  const double av = std::abs(v);
  step = std::abs(step);
  if (!(step > 0) || !std::isfinite(step)) step = av;
  if (av == 0 || av < step * 1e-6) return "0";
  const auto trim = [](std::string s) {
    if (s.find('.') == std::string::npos) return s;
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  };
  // Enough decimals to show multiples of the step exactly (1-2-5 steps need one digit; 0.25 needs two).
  const auto decimals = [](double st) {
    int d = std::clamp(-static_cast<int>(std::floor(std::log10(st) + 1e-9)), 0, 12);
    for (; d < 12; ++d) {
      const double scaled = st * std::pow(10.0, d);
      if (std::abs(scaled - std::round(scaled)) <= 1e-6 * scaled) break;
    }
    return d;
  };
  char buf[64];
  if (av >= 1e15 || av < 1e-4) {
    const int ev = static_cast<int>(std::floor(std::log10(av) + 1e-12));
    const int es = static_cast<int>(std::floor(std::log10(step) + 1e-9));
    std::snprintf(buf, sizeof buf, "%.*e", std::clamp(ev - es, 0, 6), v);
    std::string s = buf;
    const std::size_t e = s.find('e');
    return trim(s.substr(0, e)) + s.substr(e);
  }
  if (av >= 1e3) {
    static constexpr std::pair<double, char> kSuffix[] = {{1e12, 'T'}, {1e9, 'G'}, {1e6, 'M'}, {1e3, 'k'}};
    for (const auto& [scale, suffix] : kSuffix) {
      if (av < scale) continue;
      std::snprintf(buf, sizeof buf, "%.*f", decimals(step / scale), v / scale);
      return trim(buf) + suffix;
    }
  }
  std::snprintf(buf, sizeof buf, "%.*f", decimals(step), v);
  std::string s = trim(buf);
  return s == "-0" ? "0" : s;
}

std::vector<double> linear_ticks(double lo, double hi, int target) {
  std::vector<double> out;
  const double step = nice_step(hi - lo, target);
  if (!(step > 0)) return out;
  const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
  if (!(k1 - k0 < 1000)) return out;
  for (double k = k0; k <= k1; k += 1) {
    const double v = k * step;
    out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

}  // namespace plot_detail

std::array<std::uint8_t, 3> plot_series_color(std::size_t i) {
  const Rgb c = kPalette[i % 10];
  return {c.r, c.g, c.b};
}

void write_plot_png(const std::string& path, const std::vector<PlotPanel>& panels, const std::string& title) {
  PE_CHECK(!path.empty(), "write_plot_png: empty output path");
  for (std::size_t p = 0; p < panels.size(); ++p)
    for (const PlotSeries& s : panels[p].series)
      PE_CHECK(s.x.size() == s.y.size(), "write_plot_png '", path, "': panel '", panels[p].title, "' series '",
               s.name, "' has ", s.x.size(), " x values but ", s.y.size(), " y values");

  const int rows = std::max<int>(1, static_cast<int>((panels.size() + 1) / 2));
  Canvas cv(kPlotWidth, kPlotTitleHeight + kPlotCellHeight * rows);
  const std::string t = fit_text(title, kTitleScale, kPlotWidth - 40);
  draw_text(cv, (kPlotWidth - text_width(t, kTitleScale)) / 2, 20, t, kTitleScale, kText);
  const int cell_w = kPlotWidth / 2;
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const int col = static_cast<int>(p % 2), row = static_cast<int>(p / 2);
    const Rect cell{col * cell_w, kPlotTitleHeight + row * kPlotCellHeight, (col + 1) * cell_w - 1,
                    kPlotTitleHeight + (row + 1) * kPlotCellHeight - 1};
    draw_panel(cv, panels[p], cell);
  }
  write_png_atomic(path, cv);
}

void write_bar_chart_png(const std::string& path, const std::string& title, const std::vector<std::string>& metrics,
                         const std::vector<BarRow>& rows) {
  PE_CHECK(!path.empty(), "write_bar_chart_png: empty output path");
  PE_CHECK(!metrics.empty(), "write_bar_chart_png '", path, "': no metric");
  for (const BarRow& r : rows)
    PE_CHECK(r.mean.size() == metrics.size() && r.err.size() == metrics.size(), "write_bar_chart_png '", path,
             "': row '", r.label, "' has ", r.mean.size(), " means and ", r.err.size(), " errors for ", metrics.size(),
             " metrics");
  constexpr int kRowH = 24, kHeader = 40, kAxis = 36;
  int label_w = 0;
  for (const BarRow& r : rows) label_w = std::max(label_w, text_width(r.label, kLabelScale));
  label_w = std::min(label_w, 420) + 16;
  const int body_top = kPlotTitleHeight + kHeader;
  Canvas cv(kPlotWidth, body_top + kRowH * static_cast<int>(std::max<std::size_t>(rows.size(), 1)) + kAxis);
  const std::string t = fit_text(title, kTitleScale, kPlotWidth - 40);
  draw_text(cv, (kPlotWidth - text_width(t, kTitleScale)) / 2, 20, t, kTitleScale, kText);
  for (std::size_t i = 0; i < rows.size(); ++i)
    draw_text(cv, 8, body_top + static_cast<int>(i) * kRowH + 5, fit_text(rows[i].label, kLabelScale, label_w - 16),
              kLabelScale, kText);
  const int M = static_cast<int>(metrics.size());
  const int panel_w = (kPlotWidth - label_w - 10) / M;
  const int body_bottom = body_top + kRowH * static_cast<int>(rows.size());
  for (int m = 0; m < M; ++m) {
    const int x0 = label_w + m * panel_w + 10, x1 = label_w + (m + 1) * panel_w - 20;
    auto px = [&](double v) { return x0 + to_px(std::min(std::max(v, 0.0), 1.0) * (x1 - x0)); };
    const std::string mt = fit_text(metrics[size_t(m)], kPanelTitleScale, x1 - x0);
    draw_text(cv, (x0 + x1 - text_width(mt, kPanelTitleScale)) / 2, kPlotTitleHeight + 8, mt, kPanelTitleScale, kText);
    const Rect plot{x0, body_top, x1, body_bottom};
    for (int k = 0; k <= 5; ++k) {
      const double v = 0.2 * k;
      cv.fill({px(v), body_top, px(v), body_bottom}, kGrid);
      const std::string tl = plot_detail::format_tick(v, 0.2);
      draw_text(cv, px(v) - text_width(tl, kLabelScale) / 2, body_bottom + 8, tl, kLabelScale, kMuted);
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const int y0 = body_top + static_cast<int>(i) * kRowH + 4, y1 = y0 + kRowH - 9, ym = (y0 + y1) / 2;
      const double v = rows[i].mean[size_t(m)], e = rows[i].err[size_t(m)];
      if (!std::isfinite(v)) {
        draw_text(cv, x0 + 4, y0 + 1, "n/a", kLabelScale, kMuted);
        continue;
      }
      const auto c = plot_series_color(rows[i].color);
      cv.fill({x0, y0, std::max(x0, px(v)), y1}, Rgb{c[0], c[1], c[2]});
      int right = px(v);
      if (std::isfinite(e) && e > 0) {
        const int a = px(v - e), b = px(v + e);
        cv.line(a, ym, b, ym, kText, plot);
        cv.fill({a, y0 + 2, a + 1, y1 - 2}, kText);
        cv.fill({b - 1, y0 + 2, b, y1 - 2}, kText);
        right = std::max(right, b);
      }
      char buf[16];
      std::snprintf(buf, sizeof buf, "%.3f", v);
      const int tx = right + 5 + text_width(buf, kLabelScale) <= x1 + 18 ? right + 5 : std::max(x0, px(v)) - text_width(buf, kLabelScale) - 4;
      draw_text(cv, tx, y0 + 1, buf, kLabelScale, kText);
    }
    cv.outline({x0, body_top, x1, body_bottom}, kFrame);
  }
  write_png_atomic(path, cv);
}

void plot_metrics_jsonl(const std::string& jsonl_path, const std::string& png_path,
                        const std::vector<std::pair<std::string, std::vector<std::string>>>& panels,
                        const std::string& title) {
  std::vector<PlotPanel> out;
  for (const auto& [name, keys] : panels) {
    PlotPanel p;
    p.title = name;
    for (const std::string& k : keys) p.series.push_back({k, {}, {}});
    out.push_back(std::move(p));
  }

  std::ifstream in(jsonl_path, std::ios::binary);
  if (!in) PE_FAIL(jsonl_path, ": cannot open: ", std::strerror(errno));
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      PE_FAIL(jsonl_path, ":", line_no, ": malformed JSON: ", e.what());
    }
    if (!j.is_object()) PE_FAIL(jsonl_path, ":", line_no, ": expected a JSON object");
    const auto st = j.find("step");
    if (st == j.end() || !st->is_number()) PE_FAIL(jsonl_path, ":", line_no, ": missing numeric \"step\"");
    const double step = st->get<double>();
    for (PlotPanel& p : out)
      for (PlotSeries& s : p.series) {
        const auto it = j.find(s.name);
        if (it == j.end() || it->is_null()) continue;
        if (!it->is_number()) PE_FAIL(jsonl_path, ":", line_no, ": \"", s.name, "\" is not a number");
        s.x.push_back(step);
        s.y.push_back(it->get<double>());
      }
  }
  if (in.bad()) PE_FAIL(jsonl_path, ": read error after line ", line_no);
  write_plot_png(png_path, out, title);
}

}  // namespace pe
