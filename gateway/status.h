/*
 * status.h - the status page (gateway/status_page.html), embedded in the
 * binary: the Makefile turns the HTML into a C array at build time
 * ($(BUILD)/gen/status_page.c). Served at / by status.c.
 */
#ifndef FIELDMQ_STATUS_H
#define FIELDMQ_STATUS_H

#include <stddef.h>

extern const char gw_status_page[];
extern const size_t gw_status_page_len;

#endif
