/* fuzz_template.c - libFuzzer target for the chat template interpreter: parses the
 * input's template part and renders it with the input's messages (format in
 * fuzz_template_input.h), on a thread with the request threads' 256 KiB stack. Oracle:
 * no crash, no sanitizer report, no timeout; every error is a clean return. Reproducers of findings go to tests/regress/template/. */
#include "fuzz_template_input.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ft_run_on_request_stack(data, size);
    return 0;
}
