#pragma once
// Training-curve plots as PNG, with no plotting library: an RGB canvas, a built-in 5x8 bitmap font,
// 1-2-5 tick placement and libpng's simplified writer. One panel per entry in a 2-column grid, each
// with a frame, grid lines, numeric tick labels, a title and a legend naming each coloured line.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pe {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // x = step; x.size() must equal y.size()
};

struct PlotPanel {
  std::string title;
  std::vector<PlotSeries> series;
  bool log_y = false;  // non-positive y values are skipped on a log axis
};

// Image geometry: kPlotWidth wide, kPlotTitleHeight + kPlotCellHeight * rows high, with
// rows = max(1, ceil(panels / 2)); panel i sits in column i % 2, row i / 2 (4 panels: 1200x800).
inline constexpr int kPlotWidth = 1200;
inline constexpr int kPlotTitleHeight = 60;
inline constexpr int kPlotCellHeight = 370;

// Colour of the i-th series of a panel (a fixed 10-colour palette, cycled).
std::array<std::uint8_t, 3> plot_series_color(std::size_t i);

// Writes the PNG atomically (temporary file in the same folder, then rename). Non-finite points are
// skipped (the line breaks there; an isolated point is drawn as a dot); an empty series is allowed and
// still named in the legend. Throws pe::Error naming `path` on failure, leaving no temporary file.
void write_plot_png(const std::string& path, const std::vector<PlotPanel>& panels,
                    const std::string& title);

// Reads a metrics JSONL file (one JSON object per line, each with a numeric "step") and plots the
// given keys grouped into panels, e.g. {{"loss", {"loss"}}, {"contrastive", {"cl_p2t", "cl_t2p"}}}.
// Blank lines are ignored; a line without a key (or with null there) is skipped for that series.
// A line that is not a JSON object, lacks a numeric "step", or holds a non-numeric value for a
// plotted key raises pe::Error naming file:line.
void plot_metrics_jsonl(const std::string& jsonl_path, const std::string& png_path,
                        const std::vector<std::pair<std::string, std::vector<std::string>>>& panels,
                        const std::string& title);

// Horizontal bar chart of scores in [0, 1] (protst probe): one panel per metric side by side, one row
// per entry (label on the left), the bar at `mean[m]` with a whisker of +-`err[m]` and the value
// written beside it; a NaN mean shows "n/a". Colour: plot_series_color(row.color). Height grows with
// the rows (24 px each). Written atomically like write_plot_png.
struct BarRow {
  std::string label;
  std::vector<double> mean, err;  // one per metric
  std::size_t color = 0;
};
void write_bar_chart_png(const std::string& path, const std::string& title, const std::vector<std::string>& metrics,
                         const std::vector<BarRow>& rows);

namespace plot_detail {
// Tick label for v on an axis whose ticks are `step` apart: "0", "0.25", "1.5k", "2M", "0.001",
// "1e-05", "2.5e-05" (trailing zeros trimmed; k/M/G/T from 1000; scientific below 1e-4 and from 1e15).
std::string format_tick(double v, double step);
// Multiples of a 1-2-5 step lying in [lo, hi], aiming at about `target` ticks.
std::vector<double> linear_ticks(double lo, double hi, int target);
}  // namespace plot_detail

}  // namespace pe
