# Stands in for a backend's tests when the backend was not built: a skip with the reason, or a
# failure where the environment variable REQUIRE names says the backend must be present (CI).
if(REQUIRE AND "$ENV{${REQUIRE}}" STREQUAL "1")
  message(FATAL_ERROR "${WHAT} is required here (${REQUIRE}=1) but was not built: ${REASON}")
endif()
message("skipped: ${WHAT} not built: ${REASON}")
