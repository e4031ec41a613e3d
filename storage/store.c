/* store.c - opens chatd's SQLite database. */
#include "store.h"

#include <sqlite3.h>

const char *store_sqlite_version(void)
{
    return sqlite3_libversion();
}
