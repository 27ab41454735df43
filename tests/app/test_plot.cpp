// PNG training-curve plots: tick placement and labels, the written image read back with libpng
// (size, every series colour drawn as a line), non-finite and empty data, the metrics JSONL reader's
// errors, and the atomic write leaving no temporary file behind on failure.
#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"
#include <png.h>
#include <stdlib.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "app/plot.h"
#include "core/error.h"

namespace fs = std::filesystem;
using namespace pe;
using pe::testing::TempDir;

namespace {


struct Image {
  int w = 0, h = 0;
  std::vector<std::uint8_t> rgb;
  // Pixels of colour c within [x0, x1) x [y0, y1).
  long count(std::array<std::uint8_t, 3> c, int x0, int y0, int x1, int y1) const {
    long n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        const std::uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
        n += p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
      }
    return n;
  }
  long count(std::array<std::uint8_t, 3> c) const { return count(c, 0, 0, w, h); }
};

Image read_png(const fs::path& p) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  REQUIRE_MESSAGE(png_image_begin_read_from_file(&img, p.c_str()) != 0, img.message);
  img.format = PNG_FORMAT_RGB;
  Image out;
  out.w = static_cast<int>(img.width);
  out.h = static_cast<int>(img.height);
  out.rgb.resize(PNG_IMAGE_SIZE(img));
  REQUIRE_MESSAGE(png_image_finish_read(&img, nullptr, out.rgb.data(), 0, nullptr) != 0, img.message);
  return out;
}

int expected_height(std::size_t panels) {
  return kPlotTitleHeight + kPlotCellHeight * static_cast<int>(std::max<std::size_t>(1, (panels + 1) / 2));
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// Bounds of panel i's grid cell.
struct Cell {
  int x0, y0, x1, y1;
};
Cell cell(int i) {
  const int cw = kPlotWidth / 2;
  return {(i % 2) * cw, kPlotTitleHeight + (i / 2) * kPlotCellHeight, (i % 2 + 1) * cw,
          kPlotTitleHeight + (i / 2 + 1) * kPlotCellHeight};
}

// A line across a panel is hundreds of pixels; a legend swatch alone is about a hundred.
constexpr long kLinePixels = 400;

}  // namespace

TEST_SUITE("app") {

TEST_CASE("plot ticks: 1-2-5 steps and compact labels") {
  using plot_detail::format_tick;
  using plot_detail::linear_ticks;
  CHECK(linear_ticks(0, 9.3, 5) == std::vector<double>{0, 2, 4, 6, 8});
  CHECK(linear_ticks(-0.04, 1.04, 5) == std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1});
  const std::vector<double> big = linear_ticks(0, 10000, 5);
  REQUIRE(big.size() == 6);
  CHECK(big[1] == 2000);
  CHECK(linear_ticks(0, 0, 5).empty());

  CHECK(format_tick(0, 0.5) == "0");
  CHECK(format_tick(1e-17, 0.1) == "0");
  CHECK(format_tick(0.5, 0.5) == "0.5");
  CHECK(format_tick(2, 0.5) == "2");
  CHECK(format_tick(-1.25, 0.25) == "-1.25");
  CHECK(format_tick(0.001, 0.001) == "0.001");
  CHECK(format_tick(1e-5, 1e-5) == "1e-05");
  CHECK(format_tick(2.5e-5, 5e-6) == "2.5e-05");
  CHECK(format_tick(1500, 500) == "1.5k");
  CHECK(format_tick(2000, 1000) == "2k");
  CHECK(format_tick(800, 200) == "800");
  CHECK(format_tick(2.5e6, 5e5) == "2.5M");
  CHECK(format_tick(3e9, 1e9) == "3G");
  CHECK(format_tick(1e16, 1e16) == "1e+16");
}

TEST_CASE("plot: synthetic curves give an image of the right size with every series drawn") {
  TempDir td("plot");
  std::vector<PlotPanel> panels(3);
  panels[0].title = "loss";
  panels[1].title = "contrastive";
  panels[2].title = "scale (log)";
  panels[2].log_y = true;
  PlotSeries loss{"loss", {}, {}}, a{"cl_p2t", {}, {}}, b{"cl_t2p", {}, {}}, c{"cl_extra", {}, {}}, s{"lr", {}, {}};
  for (int i = 0; i <= 200; ++i) {
    const double x = i * 10.0;
    loss.x.push_back(x);
    loss.y.push_back(3.0 * std::exp(-i / 60.0) + 0.2);
    a.x.push_back(x);
    a.y.push_back(2.0 - i / 150.0);
    b.x.push_back(x);
    b.y.push_back(1.0 + std::sin(i / 20.0));
    c.x.push_back(x);
    c.y.push_back(0.5 + i / 400.0);
    s.x.push_back(x);
    s.y.push_back(1e-5 * std::pow(10.0, i / 50.0));
  }
  panels[0].series = {loss};
  panels[1].series = {a, b, c};
  panels[2].series = {s};
  const fs::path out = td.dir / "curves.png";
  write_plot_png(out.string(), panels, "synthetic run");
  CHECK(td.entries() == std::vector<std::string>{"curves.png"});

  const Image img = read_png(out);
  CHECK(img.w == kPlotWidth);
  CHECK(img.h == expected_height(3));
  CHECK(img.h == 800);
  for (int p = 0; p < 3; ++p) {
    const Cell ce = cell(p);
    for (std::size_t si = 0; si < panels[p].series.size(); ++si) {
      INFO("panel " << p << " series " << si);
      CHECK(img.count(plot_series_color(si), ce.x0, ce.y0, ce.x1, ce.y1) > kLinePixels);
    }
  }
  // The empty fourth cell stays blank; the series colours are distinct.
  const Cell empty = cell(3);
  CHECK(img.count({255, 255, 255}, empty.x0, empty.y0, empty.x1, empty.y1) ==
        static_cast<long>(empty.x1 - empty.x0) * (empty.y1 - empty.y0));
  for (std::size_t i = 0; i < 10; ++i)
    for (std::size_t j = i + 1; j < 10; ++j) CHECK(plot_series_color(i) != plot_series_color(j));

  // Overwriting an existing plot replaces it atomically.
  write_plot_png(out.string(), {panels[0]}, "again");
  CHECK(read_png(out).h == expected_height(1));
  CHECK(td.entries() == std::vector<std::string>{"curves.png"});
}

TEST_CASE("plot: non-finite values - empty series and empty panels do not crash") {
  TempDir td("plot");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<PlotPanel> panels(5);
  panels[0].title = "with gaps";
  panels[0].series = {{"gappy", {0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, nan, 3, inf, -inf, 2, nan, 1}},
                      {"empty", {}, {}}};
  panels[1].title = "log with non-positive";
  panels[1].log_y = true;
  panels[1].series = {{"v", {0, 1, 2, 3, nan}, {0, -1, 0.1, 100, 5}}};
  panels[2].title = "all nan";
  panels[2].series = {{"nan", {0, 1}, {nan, nan}}};
  panels[3].title = "single point";
  panels[3].series = {{"one", {5}, {0.25}}};
  panels[4].title = "";  // no series at all
  const fs::path out = td.dir / "odd.png";
  REQUIRE_NOTHROW(write_plot_png(out.string(), panels, ""));
  const Image img = read_png(out);
  CHECK(img.w == kPlotWidth);
  CHECK(img.h == expected_height(5));
  CHECK(img.count(plot_series_color(0), cell(0).x0, cell(0).y0, cell(0).x1, cell(0).y1) > kLinePixels / 2);
  CHECK(img.count(plot_series_color(0), cell(3).x0, cell(3).y0, cell(3).x1, cell(3).y1) > 0);

  // Mismatched x/y lengths are a caller error naming the path; nothing is written.
  const fs::path bad = td.dir / "bad.png";
  PlotPanel p;
  p.series = {{"s", {1, 2, 3}, {1, 2}}};
  try {
    write_plot_png(bad.string(), {p}, "t");
    FAIL("expected pe::Error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(bad.string()) != std::string::npos);
  }
  CHECK(!fs::exists(bad));
}

TEST_CASE("plot: failed writes throw naming the path and leave no temporary file") {
  TempDir td("plot");
  PlotPanel p;
  p.title = "t";
  p.series = {{"s", {0, 1, 2}, {1, 2, 3}}};

  const fs::path missing = td.dir / "no_such_dir" / "plot.png";
  try {
    write_plot_png(missing.string(), {p}, "t");
    FAIL("expected pe::Error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(missing.string()) != std::string::npos);
  }
  CHECK(td.entries().empty());

  // The final rename fails (the target is a non-empty directory): the temporary file is removed.
  const fs::path occupied = td.dir / "occupied.png";
  fs::create_directory(occupied);
  write_text(occupied / "keep", "x");
  try {
    write_plot_png(occupied.string(), {p}, "t");
    FAIL("expected pe::Error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(occupied.string()) != std::string::npos);
  }
  CHECK(td.entries() == std::vector<std::string>{"occupied.png"});
}

TEST_CASE("plot_metrics_jsonl: plots keys by panel - skipping missing and null values") {
  TempDir td("plot");
  std::string jsonl;
  for (int step = 0; step <= 300; step += 10) {
    jsonl += "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(4.0 - step / 100.0);
    if (step % 20 == 0) jsonl += ", \"cl_p2t\": " + std::to_string(2.0 - step / 300.0);
    jsonl += ", \"cl_t2p\": " + std::string(step == 150 ? "null" : std::to_string(1.5 + step / 600.0));
    jsonl += ", \"tokens_per_s\": " + std::to_string(12000 + step) + ", \"note\": \"text ignored\"}\n";
    if (step == 100) jsonl += "\n   \r\n";  // blank lines are ignored
  }
  const fs::path in = td.dir / "metrics.jsonl", out = td.dir / "metrics.png";
  write_text(in, jsonl);
  plot_metrics_jsonl(in.string(), out.string(),
                     {{"loss", {"loss"}},
                      {"contrastive", {"cl_p2t", "cl_t2p"}},
                      {"masked prediction", {"mlm", "mmp_protein", "mmp_text"}},
                      {"logit scale", {"logit_scale"}},
                      {"throughput", {"tokens_per_s"}}},
                     "run 1");
  const Image img = read_png(out);
  CHECK(img.w == kPlotWidth);
  CHECK(img.h == expected_height(5));
  CHECK(img.count(plot_series_color(0), cell(0).x0, cell(0).y0, cell(0).x1, cell(0).y1) > kLinePixels);
  CHECK(img.count(plot_series_color(0), cell(1).x0, cell(1).y0, cell(1).x1, cell(1).y1) > kLinePixels);
  CHECK(img.count(plot_series_color(1), cell(1).x0, cell(1).y0, cell(1).x1, cell(1).y1) > kLinePixels);
  CHECK(img.count(plot_series_color(0), cell(4).x0, cell(4).y0, cell(4).x1, cell(4).y1) > kLinePixels);
  // Keys absent from every line: only the legend swatches.
  CHECK(img.count(plot_series_color(2), cell(2).x0, cell(2).y0, cell(2).x1, cell(2).y1) < kLinePixels / 2);
}

TEST_CASE("plot_metrics_jsonl: malformed lines raise an error naming file:line") {
  TempDir td("plot");
  const fs::path in = td.dir / "metrics.jsonl", out = td.dir / "m.png";
  const auto expect_error = [&](const std::string& content, const std::string& where) {
    write_text(in, content);
    try {
      plot_metrics_jsonl(in.string(), out.string(), {{"loss", {"loss"}}}, "t");
      FAIL("expected pe::Error for " << where);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(in.string() + ":" + where) != std::string::npos);
    }
    CHECK(!fs::exists(out));
  };
  expect_error("{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"loss\": 1}\n{\"step\": 3, \"loss\": \n", "3");
  expect_error("{\"step\": 1, \"loss\": 2}\n\n[1, 2]\n", "3");
  expect_error("{\"loss\": 2}\n", "1");
  expect_error("{\"step\": \"1\", \"loss\": 2}\n", "1");
  expect_error("{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"loss\": \"nan\"}\n", "2");
  expect_error("{\"step\": 1, \"loss\": NaN}\n", "1");

  try {
    plot_metrics_jsonl((td.dir / "absent.jsonl").string(), out.string(), {{"loss", {"loss"}}}, "t");
    FAIL("expected pe::Error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("absent.jsonl") != std::string::npos);
  }
}

}  // TEST_SUITE("app")

TEST_SUITE("app") {
  TEST_CASE("bar chart: bar length follows the value in every metric panel - n/a and size mismatches") {
    TempDir td("bars");
    const std::string out = (td.dir / "bars.png").string();
    // Three rows in three colours: 0.2, 0.8 and NaN (n/a) in metric A; 0.8, 0.2 and 0.5 in metric B.
    std::vector<BarRow> rows = {{"short then long", {0.2, 0.8}, {0.0, 0.05}, 0},
                                {"long then short", {0.8, 0.2}, {0.05, 0.0}, 1},
                                {"missing A", {std::nan(""), 0.5}, {0.0, 0.0}, 2}};
    write_bar_chart_png(out, "probe", {"A", "B"}, rows);
    const Image img = read_png(out);
    CHECK(img.w == kPlotWidth);
    const int half = img.w / 2 + 100;  // the label column shifts both panels right; A lies left of this
    const long a0 = img.count(plot_series_color(0), 0, 0, half, img.h), b0 = img.count(plot_series_color(0), half, 0, img.w, img.h);
    const long a1 = img.count(plot_series_color(1), 0, 0, half, img.h), b1 = img.count(plot_series_color(1), half, 0, img.w, img.h);
    CHECK(a0 > 0);
    CHECK(b1 > 0);
    CHECK(b0 > 3 * a0);  // 0.8 vs 0.2
    CHECK(a1 > 3 * b1);
    const long a2 = img.count(plot_series_color(2), 0, 0, half, img.h), b2 = img.count(plot_series_color(2), half, 0, img.w, img.h);
    CHECK(a2 == 0);  // NaN: no bar
    CHECK(b2 > 0);
    CHECK_THROWS_WITH_AS(write_bar_chart_png(out, "x", {"A", "B"}, {{"bad", {0.1}, {0.0}, 0}}),
                         doctest::Contains("row 'bad' has 1 means"), Error);
  }
}
