#define BOOST_TEST_MODULE prefork unit tests
#include <boost/test/unit_test.hpp>
