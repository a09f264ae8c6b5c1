# Strict warnings for Axon's own code; -Werror when AXON_WERROR is ON (CI).
function(axon_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wcast-align
    -Wwrite-strings -Wundef -Wformat=2 -Wvla -Wimplicit-fallthrough
    $<$<BOOL:${AXON_WERROR}>:-Werror>)
endfunction()

# A lighter set for tests, benches and examples.
function(axon_target_warnings_light target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wno-missing-field-initializers
    $<$<BOOL:${AXON_WERROR}>:-Werror>)
endfunction()
