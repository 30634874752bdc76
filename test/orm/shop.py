"""A small shop written the way a SQLAlchemy application is written, with no
knowledge of pg_cachekit: declarative models, request-scoped sessions, the
ORM's usual queries and writes. test/orm/freshness.py drives it with
transparent caching on and checks every read it makes.

Every read returns plain Python values (tuples, Decimals, dates) so that the
same read, run once through the cache and once directly, can be compared.
Each read opens its own session, as a web request would: a session's identity
map would otherwise answer session.get() without asking the server.
"""

import datetime
from decimal import Decimal

from sqlalchemy import (Column, Date, DateTime, ForeignKey, Integer, Numeric, String,
                        desc, func, select)
from sqlalchemy.orm import (Session, declarative_base, joinedload,
                            relationship, selectinload)

Base = declarative_base()


class Customer(Base):
    __tablename__ = "customers"
    id = Column(Integer, primary_key=True)
    name = Column(String(80), nullable=False)
    email = Column(String(120), nullable=False, unique=True)
    city = Column(String(40), nullable=False, index=True)
    orders = relationship("Order", back_populates="customer", order_by="Order.id",
                          cascade="all, delete-orphan")


class Product(Base):
    __tablename__ = "products"
    id = Column(Integer, primary_key=True)
    sku = Column(String(20), nullable=False, unique=True)
    name = Column(String(80), nullable=False)
    category = Column(String(40), nullable=False)
    price = Column(Numeric(10, 2), nullable=False)
    stock = Column(Integer, nullable=False, default=0)


class Order(Base):
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True)
    customer_id = Column(ForeignKey("customers.id"), nullable=False, index=True)
    status = Column(String(16), nullable=False, default="open")
    placed_on = Column(Date, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    customer = relationship("Customer", back_populates="orders")
    lines = relationship("OrderLine", back_populates="order", order_by="OrderLine.id",
                         cascade="all, delete-orphan")


class OrderLine(Base):
    __tablename__ = "order_lines"
    id = Column(Integer, primary_key=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, index=True)
    product_id = Column(ForeignKey("products.id"), nullable=False)
    quantity = Column(Integer, nullable=False)
    unit_price = Column(Numeric(10, 2), nullable=False)
    order = relationship("Order", back_populates="lines")
    product = relationship("Product")


CITIES = ["Lyon", "Nantes", "Lille", "Porto", "Gent"]
CATEGORIES = ["books", "games", "tools", "garden"]


def seed(engine, customers=40, products=30, orders=120):
    """Deterministic starting data."""
    with Session(engine) as s, s.begin():
        for i in range(1, products + 1):
            s.add(Product(id=i, sku=f"SKU-{i:04d}", name=f"Product {i}",
                          category=CATEGORIES[i % len(CATEGORIES)],
                          price=Decimal(5 + (i * 37) % 90) + Decimal("0.99"), stock=10 + i % 7))
        for i in range(1, customers + 1):
            s.add(Customer(id=i, name=f"Customer {i}", email=f"c{i}@example.org",
                           city=CITIES[i % len(CITIES)]))
        s.flush()
        line_id = 0
        for i in range(1, orders + 1):
            # Customers 1..customers-5 have orders; the last five have none.
            o = Order(id=i, customer_id=1 + (i * 7) % (customers - 5),
                      status="open" if i % 3 else "shipped",
                      placed_on=datetime.date(2026, 1, 1) + datetime.timedelta(days=i % 60))
            for k in range(1 + i % 3):
                line_id += 1
                pid = 1 + (i * 11 + k * 5) % products
                o.lines.append(OrderLine(id=line_id, product_id=pid, quantity=1 + (i + k) % 4,
                                         unit_price=Decimal(5 + (pid * 37) % 90) + Decimal("0.99")))
            s.add(o)
    # The explicit ids above leave the sequences behind.
    with engine.begin() as c:
        for t in ("customers", "products", "orders", "order_lines"):
            c.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")


# --- reads: (name, function(session, arg) -> plain value, args to run it with)

def customer_by_pk(s, cid):
    c = s.get(Customer, cid)
    return None if c is None else (c.id, c.name, c.email, c.city)


def customers_in_city(s, city):
    rows = s.execute(select(Customer).filter_by(city=city).order_by(Customer.id)).scalars()
    return [(c.id, c.name) for c in rows]


def orders_of_customer(s, cid):
    rows = s.execute(select(Order).filter_by(customer_id=cid).order_by(Order.id)).scalars()
    return [(o.id, o.status, o.placed_on) for o in rows]


def customer_with_orders(s, cid):
    c = s.execute(select(Customer).options(selectinload(Customer.orders))
                  .where(Customer.id == cid)).scalar_one_or_none()
    return None if c is None else (c.name, [(o.id, o.status) for o in c.orders])


def order_with_lines(s, oid):
    o = s.execute(select(Order)
                  .options(joinedload(Order.lines).joinedload(OrderLine.product),
                           joinedload(Order.customer))
                  .where(Order.id == oid)).unique().scalar_one_or_none()
    if o is None:
        return None
    return (o.id, o.customer.name, o.status,
            [(l.product.sku, l.quantity, l.unit_price, l.product.price) for l in o.lines])


def top_customers(s, n):
    spent = func.sum(OrderLine.quantity * OrderLine.unit_price).label("spent")
    rows = s.execute(select(Customer.id, Customer.name, spent)
                     .join(Customer.orders).join(Order.lines)
                     .where(Order.status != "cancelled")
                     .group_by(Customer.id).order_by(desc(spent), Customer.id).limit(n))
    return [tuple(r) for r in rows]


def open_order_count(s, status):
    return s.scalar(select(func.count()).select_from(Order).where(Order.status == status))


def category_summary(s, _):
    rows = s.execute(select(Product.category, func.count(Product.id), func.avg(Product.price),
                            func.sum(Product.stock))
                     .group_by(Product.category).order_by(Product.category))
    return [tuple(r) for r in rows]


def products_page(s, page):
    rows = s.execute(select(Product).order_by(Product.price, Product.id)
                     .offset(page * 5).limit(5)).scalars()
    return [(p.sku, p.price) for p in rows]


def cheap_product_count(s, limit):
    # The legacy Query API, still common in 1.4 code bases.
    return s.query(Product).filter(Product.price < limit).count()


def customers_without_orders(s, _):
    rows = s.execute(select(Customer.id).where(~Customer.orders.any()).order_by(Customer.id))
    return [r[0] for r in rows]


def revenue_by_day(s, since):
    rows = s.execute(select(Order.placed_on, func.sum(OrderLine.quantity * OrderLine.unit_price))
                     .join(Order.lines).where(Order.placed_on >= since)
                     .group_by(Order.placed_on).order_by(Order.placed_on))
    return [tuple(r) for r in rows]


def recent_order_count(s, seconds):
    """Orders created in the last `seconds`: its answer changes with the
    clock alone, so it is not among READS (see freshness.py's clock phase)."""
    since = func.now() - datetime.timedelta(seconds=seconds)
    return s.scalar(select(func.count()).select_from(Order).where(Order.created_at > since))


READS = [
    ("customer_by_pk", customer_by_pk, [1, 2, 7]),
    ("customers_in_city", customers_in_city, ["Lyon", "Gent"]),
    ("orders_of_customer", orders_of_customer, [1, 2, 8]),
    ("customer_with_orders", customer_with_orders, [1, 8]),
    ("order_with_lines", order_with_lines, [3, 4, 10]),
    ("top_customers", top_customers, [5]),
    ("open_order_count", open_order_count, ["open"]),
    ("category_summary", category_summary, [None]),
    ("products_page", products_page, [0, 2]),
    ("cheap_product_count", cheap_product_count, [30]),
    ("customers_without_orders", customers_without_orders, [None]),
    ("revenue_by_day", revenue_by_day, [datetime.date(2026, 2, 1)]),
]


def run_read(engine, fn, arg):
    with Session(engine) as s:
        return fn(s, arg)


# --- writes through the application's own session (committed) -------------

def place_order(engine, cid, items, day):
    with Session(engine) as s, s.begin():
        o = Order(customer_id=cid, status="open", placed_on=day)
        for pid, qty in items:
            p = s.get(Product, pid)
            p.stock -= qty
            o.lines.append(OrderLine(product_id=pid, quantity=qty, unit_price=p.price))
        s.add(o)
        s.flush()
        return o.id


def ship_order(engine, oid):
    with Session(engine) as s, s.begin():
        o = s.get(Order, oid)
        if o is not None:
            o.status = "shipped"


def reprice(engine, pid, price):
    with Session(engine) as s, s.begin():
        s.get(Product, pid).price = price


def drop_last_line(engine, oid):
    with Session(engine) as s, s.begin():
        o = s.get(Order, oid)
        if o is not None and o.lines:
            s.delete(o.lines[-1])


def move_customer(engine, cid, city):
    with Session(engine) as s, s.begin():
        c = s.get(Customer, cid)
        if c is not None:
            c.city = city


def sign_up(engine, name, city):
    with Session(engine) as s, s.begin():
        c = Customer(name=name, email=f"{name.lower().replace(' ', '.')}@example.org", city=city)
        s.add(c)
        s.flush()
        return c.id


def close_account(engine, cid):
    with Session(engine) as s, s.begin():
        c = s.get(Customer, cid)
        if c is not None:
            s.delete(c)  # its orders and their lines go with it (cascade)
