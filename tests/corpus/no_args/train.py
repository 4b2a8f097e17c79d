"""k-nearest neighbours on scikit-learn's iris data, with its settings written into the script."""
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

N_NEIGHBORS = 5
TEST_SIZE = 0.3
SEED = 42

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, random_state=SEED)
clf = KNeighborsClassifier(n_neighbors=N_NEIGHBORS).fit(X_train, y_train)
accuracy = clf.score(X_test, y_test)
print(f"accuracy: {accuracy:.4f}")
