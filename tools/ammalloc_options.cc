// ammalloc-options: prints ammalloc's options table (lib/core/options.cc's
// kOptionTable, the one source of truth) as the man pages the build installs.
//
//   ammalloc-options man3 VERSION              > ammalloc.3
//   ammalloc-options man1 VERSION AMMALLOC_RUN > ammalloc-run.1
//   ammalloc-options list                      one "NAME<TAB>type<TAB>default" per line
//
// man1 takes the usage text from the header comment of tools/ammalloc-run
// (lines 2 up to `set -u`, what `ammalloc-run --help` prints), so the page
// and --help cannot disagree. A build tool: it may allocate (std::string).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "core/options.h"

using namespace am;

namespace {

const char* type_name(OptionType t) {
  switch (t) {
    case OptionType::kBool: return "bool";
    case OptionType::kBytes: return "bytes";
    case OptionType::kInt: return "int";
    case OptionType::kChoice: return "choice";
    case OptionType::kString: return "string";
    case OptionType::kSignal: return "signal";
  }
  return "?";
}

// roff escapes: backslashes and a leading dot or quote.
std::string roff(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string value_text(const OptionDef& d, int64_t v) {
  char buf[64];
  if (d.type == OptionType::kString) return "unset";
  if (d.type == OptionType::kChoice && d.choices) return d.choices[v];
  if (d.type == OptionType::kBytes) {
    format_bytes(v, buf, sizeof buf);
    return buf;
  }
  snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  return buf;
}

std::string range_text(const OptionDef& d) {
  if (d.type == OptionType::kString) return "text";
  if (d.type == OptionType::kBool) return "0/1";
  if (d.type == OptionType::kChoice && d.choices) {
    std::string s;
    for (int i = 0; d.choices[i]; ++i) {
      if (i) s += '/';
      s += d.choices[i];
    }
    return s;
  }
  std::string r = value_text(d, d.min);
  r += " .. ";
  r += value_text(d, d.max);
  return r;
}

void options_section() {
  printf(".SH ENVIRONMENT\n");
  printf("Every option is an environment variable, read once when the first allocation happens.\n");
  printf("A malformed or out\\-of\\-range value prints one \\fBammalloc: warning:\\fR line and the default is used;\n");
  printf("so does an \\fBAMMALLOC_*\\fR variable that is not an option (the warning names the closest one).\n");
  printf("Sizes take K, M, G or T (binary), optionally followed by B or iB, and a decimal fraction: 4M, 4MiB, 1.5M, 64T.\n");
  printf("Options marked \\fIrun time\\fR can be changed with \\fBam_option_set\\fR(3).\n");
  for (int i = 0; i < kNumOptions; ++i) {
    const OptionDef& d = kOptionTable[i];
    printf(".TP\n.B %s\n", d.name);
    printf("%s; default \\fB%s\\fR; %s%s.\n", type_name(d.type), roff(value_text(d, d.def)).c_str(),
           roff(range_text(d)).c_str(), d.runtime ? "; run time" : "");
    printf(".br\n%s\n", roff(d.doc).c_str());
  }
}

int man3(const char* version) {
  printf(".TH AMMALLOC 3 \"\" \"ammalloc %s\" \"ammalloc\"\n", version);
  printf(".SH NAME\nammalloc \\- a malloc replacement for LLM inference servers\n");
  printf(".SH SYNOPSIS\n.nf\n");
  printf("LD_PRELOAD=/usr/lib/<multiarch>/libammalloc.so \\fIprogram\\fR\n");
  printf("cc app.c $(pkg\\-config \\-\\-cflags \\-\\-libs ammalloc)\n");
  printf("find_package(ammalloc)   # CMake: ammalloc::ammalloc, ammalloc::core, ammalloc::cxx\n");
  printf("\n.B #include <ammalloc/ammalloc.h>\n");
  printf(".B const char* am_version(void);\n");
  printf(".B size_t am_stats_text(char* buf, size_t len);\n");
  printf(".B size_t am_stats_json(char* buf, size_t len);\n");
  printf(".B int am_option_set(const char* name, long long value);\n");
  printf(".fi\n");
  printf(".SH DESCRIPTION\n");
  printf("ammalloc replaces malloc, free, operator new and delete and the rest of the family, ");
  printf("when preloaded (\\fBLD_PRELOAD\\fR) or linked (\\fB\\-lammalloc\\fR). ");
  printf("\\fBlibammalloc_core\\fR exports only the am_* API and leaves the system malloc in place. ");
  printf("Set \\fBAMMALLOC_VERBOSE=1\\fR to see that it runs: a banner with the version, build options and ");
  printf("THP/NUMA mode, and every option with its source, on stderr.\n");
  options_section();
  printf(".SH SEE ALSO\n\\fBammalloc\\-run\\fR(1), \\fBgoogle\\-pprof\\fR(1), \\fBmalloc\\fR(3)\n");
  return 0;
}

int man1(const char* version, const char* script) {
  std::ifstream in(script);
  if (!in) {
    fprintf(stderr, "ammalloc-options: cannot read %s\n", script);
    return 1;
  }
  printf(".TH AMMALLOC\\-RUN 1 \"\" \"ammalloc %s\" \"ammalloc\"\n", version);
  printf(".SH NAME\nammalloc\\-run \\- start a program under ammalloc, with its heap profiler or leak checker\n");
  printf(".SH DESCRIPTION\n.nf\n");
  std::string line;
  std::getline(in, line);  // #!/usr/bin/env bash
  while (std::getline(in, line) && line.rfind("set -u", 0) != 0) {
    if (line.rfind("# ", 0) == 0) line = line.substr(2);
    else if (line.rfind("#", 0) == 0) line = line.substr(1);
    printf("%s\n", roff(line).c_str());
  }
  printf(".fi\n");
  options_section();
  printf(".SH SEE ALSO\n\\fBammalloc\\fR(3), \\fBgoogle\\-pprof\\fR(1)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && strcmp(argv[1], "man3") == 0) return man3(argv[2]);
  if (argc >= 4 && strcmp(argv[1], "man1") == 0) return man1(argv[2], argv[3]);
  if (argc >= 2 && strcmp(argv[1], "list") == 0) {
    for (int i = 0; i < kNumOptions; ++i) {
      const OptionDef& d = kOptionTable[i];
      printf("%s\t%s\t%s\n", d.name, type_name(d.type), value_text(d, d.def).c_str());
    }
    return 0;
  }
  fprintf(stderr, "usage: ammalloc-options man3 VERSION | man1 VERSION AMMALLOC_RUN | list\n");
  return 2;
}
