#define BOOST_TEST_MODULE prefork integration tests
#include <boost/test/unit_test.hpp>
