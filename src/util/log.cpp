#include "qsweep/util/log.h"

#include <boost/log/attributes/constant.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/log/sources/severity_logger.hpp>
#include <boost/log/support/date_time.hpp>
#include <boost/log/utility/setup/common_attributes.hpp>
#include <boost/log/utility/setup/console.hpp>
#include <boost/log/utility/setup/file.hpp>

#include <filesystem>
#include <iostream>
#include <mutex>

namespace logging = boost::log;
namespace expr = boost::log::expressions;

namespace qsweep {

BOOST_LOG_ATTRIBUTE_KEYWORD(severity, "Severity", LogLevel)
BOOST_LOG_ATTRIBUTE_KEYWORD(rank_attr, "Rank", int)
BOOST_LOG_ATTRIBUTE_KEYWORD(host_attr, "Host", std::string)

static const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, LogLevel level) { return os << level_name(level); }

namespace {
logging::sources::severity_logger_mt<LogLevel>& logger() {
  static logging::sources::severity_logger_mt<LogLevel> instance;
  return instance;
}
bool initialised = false;
std::mutex init_mutex;
}  // namespace

void init_logging(const LogOptions& options) {
  std::lock_guard<std::mutex> lock(init_mutex);
  auto core = logging::core::get();
  core->remove_all_sinks();
  core->add_global_attribute("Rank", logging::attributes::constant<int>(options.rank));
  core->add_global_attribute("Host", logging::attributes::constant<std::string>(options.host));
  logging::add_common_attributes();
  if (options.console) {
    logging::add_console_log(
        std::clog,
        logging::keywords::filter = severity >= options.level,
        logging::keywords::format = expr::stream
            << "[" << expr::format_date_time<boost::posix_time::ptime>("TimeStamp", "%H:%M:%S")
            << " r" << rank_attr << "] " << expr::if_(severity != LogLevel::info)
            [expr::stream << severity << ": "] << expr::smessage);
  }
  if (!options.dir.empty()) {
    std::filesystem::create_directories(options.dir);
    logging::add_file_log(
        logging::keywords::file_name =
            options.dir + "/" + options.file_stem + "-rank" + std::to_string(options.rank) + ".log",
        logging::keywords::open_mode = std::ios_base::app,
        logging::keywords::auto_flush = true,
        logging::keywords::filter = severity >= LogLevel::debug,
        logging::keywords::format = expr::stream
            << expr::format_date_time<boost::posix_time::ptime>("TimeStamp",
                                                                "%Y-%m-%d %H:%M:%S.%f")
            << " rank=" << rank_attr << " host=" << host_attr << " " << severity << " "
            << expr::smessage);
  }
  initialised = true;
}

void write_log(LogLevel level, std::string_view message) {
  if (!initialised) {  // commands that never set logging up still show warnings and errors
    if (level >= LogLevel::warning) std::clog << level_name(level) << ": " << message << "\n";
    return;
  }
  BOOST_LOG_SEV(logger(), level) << message;
}

}  // namespace qsweep
