#include "sources/spool_source.h"

#include <catch2/catch.hpp>

#include <fstream>

#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::TempDir;

namespace {

// An Intake that records batches, or refuses them.
class RecordingIntake final : public Intake {
 public:
  bool refuse = false;
  std::vector<std::vector<Observation>> batches;

  bool commit(std::span<const Observation> observations, std::string& error) override {
    if (refuse) {
      error = "disk full";
      return false;
    }
    batches.emplace_back(observations.begin(), observations.end());
    return true;
  }
};

const std::string kLine =
    R"({"type":"order","id":"A-1","observed_at":"2026-11-20T10:00:00Z","fields":{"status":"placed"}})";

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("each spool file is committed as one batch and moved to done/, oldest name first") {
  TempDir dir;
  dir.write("b.jsonl", kLine + "\n");
  dir.write("a.jsonl", kLine + "\n\n" + kLine + "\n");
  dir.write("c.jsonl.tmp", kLine + "\n");  // still being written: left alone
  RecordingIntake intake;
  const auto scan = SpoolSource(dir.path()).scan(intake);
  CHECK(scan.files == 2);
  CHECK(scan.observations == 3);
  CHECK(scan.rejected == 0);
  REQUIRE(intake.batches.size() == 2);
  CHECK(intake.batches[0].size() == 2);  // a.jsonl
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "done/b.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "c.jsonl.tmp"));
}

TEST_CASE("a spool file with malformed lines goes to failed/ beside a file naming each line and its problem") {
  TempDir dir;
  dir.write("x.jsonl", kLine + "\n{\"type\":\"order\"}\n");
  RecordingIntake intake;
  const auto scan = SpoolSource(dir.path()).scan(intake);
  CHECK(scan.rejected == 1);
  REQUIRE(intake.batches.size() == 1);
  CHECK(intake.batches[0].size() == 1);
  CHECK(std::filesystem::exists(dir.path() / "failed/x.jsonl"));
  CHECK(slurp(dir.path() / "failed/x.jsonl.errors") == "line 2: field 'id' is missing or not a string\n");
  REQUIRE(scan.problems.size() == 1);
  CHECK_THAT(scan.problems[0], Catch::Contains("malformed lines, see"));
}

TEST_CASE("a file whose batch cannot be committed stays for the next scan") {
  TempDir dir;
  dir.write("a.jsonl", kLine + "\n");
  dir.write("b.jsonl", kLine + "\n");
  RecordingIntake intake;
  intake.refuse = true;
  const auto scan = SpoolSource(dir.path()).scan(intake);
  CHECK(scan.files == 0);
  CHECK(std::filesystem::exists(dir.path() / "a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "b.jsonl"));
  REQUIRE(scan.problems.size() == 1);
  CHECK_THAT(scan.problems[0], Catch::Contains("not committed, left in place to retry: disk full"));
  intake.refuse = false;
  CHECK(SpoolSource(dir.path()).scan(intake).files == 2);
}

TEST_CASE("a file dropped again under the same name never overwrites the earlier one") {
  TempDir dir;
  RecordingIntake intake;
  const SpoolSource spool(dir.path());
  dir.write("a.jsonl", kLine + "\n");
  spool.scan(intake);
  dir.write("a.jsonl", kLine + "\n");
  spool.scan(intake);
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl"));
  CHECK(std::filesystem::exists(dir.path() / "done/a.jsonl.1"));
}
