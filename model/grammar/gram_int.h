/* gram_int.h - private to grammar/: the compiled form of a grammar.
 *
 * Every rule is a list of alternatives; an alternative is a run of elements in one flat
 * array, ended by GE_END. An element matches one byte from a set (GE_SET, a 256-bit
 * bitmap) or a whole rule (GE_RULE). Repetitions and groups were turned into helper
 * rules by the compiler (x* is `r ::= x r | ""`), so this is all a matcher sees. */
#ifndef CHATD_GRAM_INT_H
#define CHATD_GRAM_INT_H

#include "grammar.h"

#include <stdatomic.h>

enum gram_elem_type { GE_SET = 0, GE_RULE = 1, GE_END = 2 };

struct gram_elem {
    uint32_t type; /* enum gram_elem_type */
    uint32_t arg;  /* set index or rule index */
};

struct gram {
    atomic_int refs;
    struct gram_elem *elems;
    uint32_t n_elems;
    uint32_t *alt_start; /* element index of each alternative */
    uint32_t *rule_alt;  /* [n_rules + 1]: rule r's alternatives are alt_start[rule_alt[r]..rule_alt[r+1]) */
    uint32_t n_rules;
    uint64_t (*sets)[4];
    uint32_t n_sets;
    uint32_t root;
};

static inline bool gram_set_has(const struct gram *g, uint32_t set, unsigned char b)
{
    return (g->sets[set][b >> 6] >> (b & 63)) & 1;
}

#endif
