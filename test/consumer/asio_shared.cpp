// One Asio in the program: an error that libprefork.a's compiled Asio produced
// (connection::try_read_some's eof) is boost::asio::error::eof in this file too. prefork
// compiles Asio and Beast once, into the library (BOOST_ASIO_SEPARATE_COMPILATION and
// BOOST_BEAST_SEPARATE_COMPILATION), and prefork::prefork passes those defines on: a file
// compiled without them gets header-only copies of the same functions, whose function-local
// statics (the error categories among them) are other objects than the library's, and this
// comparison fails once the compiler inlines them (-O2; CMakeLists.txt builds it so).
#include <prefork/config.hpp>
#include <prefork/connection.hpp>
#include <prefork/worker_context.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <sys/socket.h>
#include <unistd.h>

int main() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 2;
  boost::asio::io_context io;
  const prefork::config settings = prefork::default_config();
  prefork::worker_context worker(io.get_executor(), settings, 1, 1);
  prefork::connection connection(fds[0], boost::asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), io.get_executor(),
                                 0, worker);
  ::close(fds[1]);  // the peer is gone: the next read is end of file
  char buffer[8];
  boost::system::error_code ec;
  connection.try_read_some(boost::asio::buffer(buffer), ec);
  if (ec != boost::asio::error::eof) {
    std::fprintf(stderr, "the library's \"%s\" (category %p) is not boost::asio::error::eof here (category %p)\n",
                 ec.message().c_str(), static_cast<const void*>(&ec.category()),
                 static_cast<const void*>(&boost::asio::error::get_misc_category()));
    return 1;
  }
  std::puts("one Asio: the library's eof is boost::asio::error::eof");
  return 0;
}
