#include "trace/trace-ui_helix.h"
