// tactd as an operator installs it: the systemd unit as systemd-analyze
// judges it, `cmake --install` into a scratch root, and the Debian package
// CPack builds, unpacked and checked with its own binary.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "support/daemon.h"
#include "support/temp_dir.h"

using Catch::Contains;
using tactd::test::slurp;
using tactd::test::source_dir;
using tactd::test::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path kBuildDir = TACTD_BUILD_DIR;
const fs::path kConfigDir = TACTD_INSTALL_CONFIG_DIR;  // installed paths, absolute
const fs::path kTemplatesDir = TACTD_INSTALL_TEMPLATES_DIR;

struct Result {
  int status = -1;
  std::string output;  // standard output and error
};

// Runs `command` with /bin/sh, its output kept in `dir`.
Result sh(const TempDir& dir, const std::string& command) {
  const auto out = dir.path() / "command.out";
  const std::string line = "(" + command + ") >'" + out.string() + "' 2>&1 </dev/null";
  const int raw = std::system(line.c_str());
  REQUIRE(WIFEXITED(raw));
  return Result{WEXITSTATUS(raw), slurp(out)};
}

std::string quote(const fs::path& path) { return "'" + path.string() + "'"; }

// An installed path (/etc/tactd, say) inside the scratch `root`.
fs::path under(const fs::path& root, const fs::path& installed) { return root / installed.relative_path(); }

// Regular files below `dir`, as paths relative to it.
std::set<std::string> files_below(const fs::path& dir) {
  std::set<std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) files.insert(fs::relative(entry.path(), dir).string());
  return files;
}

// The *.md files directly in `dir`.
std::set<std::string> markdown_in(const fs::path& dir) {
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".md") files.insert(entry.path().filename().string());
  return files;
}

// Every line of `text` but those starting with `prefix`.
std::string without_lines(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  std::string kept;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(prefix, 0) != 0) kept += line + "\n";
  return kept;
}

// What the shipped configuration installs as, relative to the config dir.
std::set<std::string> expected_config_files() {
  std::set<std::string> files{"tactd.toml", "tone.toml"};
  for (const auto& rule : files_below(source_dir() / "config/rules")) files.insert("rules/" + rule);
  return files;
}

// The binary, unit, configuration, templates, documents and man page as
// `cmake --install` or the package put them into `root`; every shipped
// rule, template, document and example is there (the install rules list
// files by name), and nothing else is under the config dir.
void check_installed_tree(const fs::path& root) {
  INFO("installed into " << root.string());
  const fs::path tactd = under(root, TACTD_INSTALL_BINDIR) / "tactd";
  REQUIRE(fs::is_regular_file(tactd));
  CHECK((fs::status(tactd).permissions() & fs::perms::others_exec) != fs::perms::none);

  const fs::path unit = under(root, TACTD_INSTALL_UNIT_DIR) / "tactd.service";
  REQUIRE(fs::is_regular_file(unit));
  const std::string exec_start = "ExecStart=" + (fs::path(TACTD_INSTALL_BINDIR) / "tactd").string() + " run --config " +
                                 (kConfigDir / "tactd.toml").string() + "\n";
  CHECK_THAT(slurp(unit), Contains(exec_start));

  const fs::path config = under(root, kConfigDir);
  CHECK(files_below(config) == expected_config_files());  // no demo/, no examples/
  const fs::path credentials = config / "credentials";
  REQUIRE(fs::is_directory(credentials));
  CHECK(fs::status(credentials).permissions() == fs::perms::owner_all);
  const std::string templates_line = "templates = \"" + kTemplatesDir.lexically_relative(kConfigDir).string() + "\"";
  CHECK_THAT(slurp(config / "tactd.toml"), Contains(templates_line));

  CHECK(files_below(under(root, kTemplatesDir)) == files_below(source_dir() / "templates"));

  const fs::path docs = under(root, TACTD_INSTALL_DOCDIR);
  std::set<std::string> expected_docs = markdown_in(source_dir() / "docs");
  expected_docs.insert("README.md");
  CHECK(markdown_in(docs) == expected_docs);
  std::set<std::string> expected_examples = files_below(source_dir() / "config/examples");
  expected_examples.insert("credentials.conf.example");
  CHECK(files_below(docs / "examples") == expected_examples);

  // gzip -9n: no name or time stamp in the header (bytes 4-7 are the time).
  const std::string man = slurp(under(root, TACTD_INSTALL_MANDIR) / "man8/tactd.8.gz");
  REQUIRE(man.size() > 10);
  CHECK(man.substr(0, 2) == "\x1f\x8b");
  CHECK(man.substr(4, 4) == std::string(4, '\0'));
}

void check_configuration_passes(const TempDir& dir, const fs::path& root) {
  const fs::path tactd = under(root, TACTD_INSTALL_BINDIR) / "tactd";
  const fs::path config = under(root, kConfigDir) / "tactd.toml";
  const Result check = sh(dir, quote(tactd) + " check --config " + quote(config));
  INFO(check.output);
  CHECK(check.status == 0);
  CHECK_THAT(check.output, Contains("OK"));
}

}  // namespace

TEST_CASE("the generated unit passes systemd-analyze verify") {
  TempDir dir;
  // The test copy runs the build folder's tactd, since verify insists that
  // ExecStart's program exists; MANPATH lets it find tactd(8) in the build.
  const fs::path unit = kBuildDir / "systemd/verify/tactd.service";
  const Result verify =
      sh(dir, "MANPATH=" + quote(TACTD_BUILD_MAN_DIR) + " systemd-analyze verify --recursive-errors=no " + quote(unit));
  INFO(verify.output);
  CHECK(verify.status == 0);
  CHECK_THAT(verify.output, !Contains("tactd"));
}

TEST_CASE("the verified unit is the installed unit but for where tactd is") {
  const std::string installed = slurp(kBuildDir / "systemd/tactd.service");
  const std::string verified = slurp(kBuildDir / "systemd/verify/tactd.service");
  CHECK(without_lines(verified, "ExecStart=") == without_lines(installed, "ExecStart="));
  CHECK_THAT(verified, Contains("ExecStart=" + (fs::path(TACTD_BINARY).parent_path() / "tactd").string() + " run"));
}

TEST_CASE("systemd-analyze security rates the unit 2.0 or lower") {
  TempDir dir;
  const Result security =
      sh(dir, "systemd-analyze security --offline=true --threshold=20 " + quote(kBuildDir / "systemd/tactd.service"));
  INFO(security.output);
  std::smatch level;
  REQUIRE(std::regex_search(security.output, level,
                            std::regex(R"(Overall exposure level for tactd\.service: ([0-9]+\.[0-9]+))")));
  CHECK(std::stod(level[1].str()) <= 2.0);
  CHECK(security.status == 0);  // --threshold=20 is 2.0: above it, the command fails
}

TEST_CASE("tactd(8) renders without warnings and names every command") {
  TempDir dir;
  const Result man = sh(dir, "LC_ALL=C.UTF-8 MANWIDTH=200 man --warnings -E UTF-8 -l " +
                                 quote(source_dir() / "docs/tactd.8") + " 2>" + quote(dir.path() / "warnings"));
  INFO(man.output);
  REQUIRE(man.status == 0);
  CHECK(slurp(dir.path() / "warnings").empty());
  for (const char* synopsis :
       {"tactd run --config", "tactd check --config", "tactd simulate --config", "tactd preview --config",
        "tactd outbox list --config", "tactd outbox show|retry|drop", "tactd timeline customer"})
    CHECK_THAT(man.output, Contains(synopsis));
  for (const char* section : {"SIGNALS", "SIGHUP", "SIGTERM", "FILES", "EXIT STATUS", "SEE ALSO"})
    CHECK_THAT(man.output, Contains(section));
}

TEST_CASE("cmake --install into a scratch root installs a configuration that tactd check accepts") {
  TempDir dir;
  const fs::path root = dir.path() / "root";
  const Result install =
      sh(dir, "DESTDIR=" + quote(root) + " " + quote(TACTD_CMAKE) + " --install " + quote(kBuildDir));
  INFO(install.output);
  REQUIRE(install.status == 0);
  check_installed_tree(root);
  check_configuration_passes(dir, root);
}

TEST_CASE("cpack builds a Debian package with its dependencies and conffiles that tactd check accepts") {
  if (std::string(TACTD_INSTALL_PREFIX) != "/usr")
    FAIL("this build folder is configured with CMAKE_INSTALL_PREFIX=" TACTD_INSTALL_PREFIX
         "; the package needs /usr: reconfigure with -DCMAKE_INSTALL_PREFIX=/usr");
  TempDir dir;
  // Its own output folder: CPack stages in <folder>/_CPack_Packages, and
  // tests run in parallel. CPack first brings the `all` target up to date
  // (its preinstall step): seconds after a full build, as .ci/test does.
  const fs::path out = dir.path() / "cpack";
  const Result cpack =
      sh(dir, quote(TACTD_CPACK) + " -G DEB --config " + quote(kBuildDir / "CPackConfig.cmake") + " -B " + quote(out));
  INFO(cpack.output);
  REQUIRE(cpack.status == 0);
  fs::path deb;
  for (const auto& entry : fs::directory_iterator(out))
    if (entry.path().extension() == ".deb") deb = entry.path();
  REQUIRE(!deb.empty());
  CHECK(deb.filename().string().rfind("tactd_" TACTD_VERSION "-1_", 0) == 0);

  const Result info = sh(dir, "dpkg-deb --info " + quote(deb));
  INFO(info.output);
  REQUIRE(info.status == 0);
  std::smatch depends;
  REQUIRE(std::regex_search(info.output, depends, std::regex(R"(\n Depends: ([^\n]*))")));
  for (const char* library : {"libcurl4", "libsqlite3-0", "libssl3", "libsystemd0", "libstdc++6", "libc6"})
    CHECK_THAT(depends[1].str(), Contains(library));
  CHECK_THAT(info.output, Contains("\n Section: net\n"));
  CHECK_THAT(info.output, Contains("\n Maintainer: "));
  CHECK_THAT(info.output, Contains("\n Description: proactive, empathic customer-notification daemon\n"
                                   "  tactd watches order, delivery, subscription and payment status sources,\n"));
  CHECK_THAT(info.output, Contains("\n  .\n  This package runs it as the hardened systemd service tactd.service.\n"));
  for (const char* script : {" conffiles", " postinst", " prerm", " postrm"}) CHECK_THAT(info.output, Contains(script));

  const Result conffiles = sh(dir, "dpkg-deb --info " + quote(deb) + " conffiles");
  REQUIRE(conffiles.status == 0);
  std::set<std::string> listed;
  std::istringstream lines(conffiles.output);
  for (std::string line; std::getline(lines, line);) listed.insert(line);
  std::set<std::string> expected;
  for (const auto& file : expected_config_files()) expected.insert((kConfigDir / file).string());
  CHECK(listed == expected);

  const Result contents = sh(dir, "dpkg-deb --contents " + quote(deb));
  INFO(contents.output);
  REQUIRE(contents.status == 0);
  CHECK(std::regex_search(contents.output, std::regex(R"((^|\n)drwx------ root/root +0 [^\n]* \.)" +
                                                      (kConfigDir / "credentials").string() + "/\n")));

  const fs::path root = dir.path() / "root";
  const Result extract = sh(dir, "dpkg-deb --extract " + quote(deb) + " " + quote(root));
  INFO(extract.output);
  REQUIRE(extract.status == 0);
  check_installed_tree(root);
  check_configuration_passes(dir, root);
}
