#include "trove_client.h"
