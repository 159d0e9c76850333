#ifndef ONIONRP_CHIREDIS_SHIM_H
#define ONIONRP_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <sys/time.h>
#endif
