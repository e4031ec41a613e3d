/* store.h - chatd's SQLite storage. (Filled in by the storage module.) */
#ifndef CHATD_STORE_H
#define CHATD_STORE_H

const char *store_sqlite_version(void);

#endif
