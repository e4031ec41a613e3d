/* fuzz_ids.c - libFuzzer target: oai_valid_id, the check on session ids, model ids and
 * key prefixes. Byte 0 picks the length cap (the real caps 128 and 256, or a small
 * one); the rest is the candidate, NUL bytes included (the C string ends there).
 * Oracle: an accepted id is 1..cap bytes of [A-Za-z0-9._:-] with no "/", no "..", no
 * NUL or control byte. */
#include "fuzz.h"
#include "api/oai.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t caps[4] = {128, 256, 8, 1};
    size_t cap = caps[data[0] & 3];
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    bool ok = oai_valid_id(s, cap);
    if (ok) {
        size_t n = strlen(s);
        FUZZ_CHECK(n >= 1 && n <= cap);
        FUZZ_CHECK(strchr(s, '/') == NULL && strchr(s, '\\') == NULL && strstr(s, "..") == NULL);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            FUZZ_CHECK(c > 0x20 && c < 0x7F);
            FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-' || c == ':');
        }
    }
    FUZZ_CHECK(!oai_valid_id(NULL, cap));
    free(s);
    return 0;
}
