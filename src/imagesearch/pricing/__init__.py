"""Prices: exchange-rate tables and exact decimal conversion to a currency's minor units."""
